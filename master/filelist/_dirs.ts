/** Creating missing directories in bulk (mkdirs, remerge). Internal. */
import { CONFLICT, getAll, Packer, readDirVersions } from "./_atomic.ts";
import { entryKey, storedBytes, type StoredDir, type StoredEntry } from "./_keys.ts";
import { parentOf } from "../../shared/paths.ts";

/**
 * Makes sure every directory in `dirs` (and each ancestor) exists, creating the missing ones
 * owned by owner/group. Reads the `dv` versionstamps of all of them (and "/") into `dirVersions`
 * BEFORE reading the entries, so a caller that later checks those versions detects any change
 * made after this read. Returns, for each directory that cannot exist because a file is in the
 * way, the path of that file; or CONFLICT when a concurrent change won the race.
 */
export async function ensureDirs(
  kv: Deno.Kv,
  dirs: Iterable<string>,
  owner: string,
  group: string,
  dirVersions: Map<string, string | null>,
): Promise<Map<string, string> | typeof CONFLICT> {
  const all = new Set<string>();
  for (const d of dirs) {
    for (let p = d; p !== "/" && !all.has(p); p = parentOf(p)) all.add(p);
  }
  // A parent is always shorter than its children: this orders parents first.
  const sorted = [...all].sort((a, b) => a.length - b.length);
  const unread = [...sorted, "/"].filter((d) => !dirVersions.has(d));
  await readDirVersions(kv, unread, dirVersions);
  const entries = await getAll<StoredEntry>(kv, sorted.map(entryKey));
  const blocked = new Map<string, string>();
  const packer = new Packer(kv, dirVersions);
  const mtime = Date.now();
  for (let i = 0; i < sorted.length; i++) {
    const path = sorted[i]!;
    const parent = parentOf(path);
    const blocker = blocked.get(parent);
    if (blocker !== undefined) {
      blocked.set(path, blocker);
      continue;
    }
    const v = entries[i]!.value;
    if (v?.kind === "file") {
      blocked.set(path, path);
      continue;
    }
    if (v?.kind === "dir") continue;
    const dir: StoredDir = { kind: "dir", mtime, owner, group };
    const ok = await packer.add({
      checkDirs: [parent],
      checks: [{ key: entryKey(path), versionstamp: null }],
      sets: [{ key: entryKey(path), value: dir, bytes: storedBytes(dir) }],
      touchDirs: [parent, path],
    });
    if (!ok) return CONFLICT;
  }
  if (!await packer.flush()) return CONFLICT;
  return blocked;
}
