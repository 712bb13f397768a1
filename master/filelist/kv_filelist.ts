/**
 * The filelist on Deno KV. Layout and key builders: `_keys.ts`. Every read-modify-write is an
 * optimistic `atomic().check()…commit()` retried on conflict; the holder index
 * (`["held", slave, path]`) is written in the same atomic operation as the file's holders.
 *
 * Consistency rule: every change of an entry `["fs", dir, name]` also bumps `["dv", dir]`, so a
 * reader that read `dv` first and then many children can guard them all with one check.
 *
 * A directory rename is NOT atomic as a whole: it copies the directory, then moves its subtree
 * in chunks of atomic operations, then deletes the old directories. Files always exist exactly
 * once; while it runs, both trees are visible, each with part of the files. Running two renames
 * of overlapping trees at the same time is not supported.
 */
import { getLogger } from "@logtape/logtape";
import {
  baseName,
  isNormalized,
  isWithin,
  joinPath,
  parentOf,
  printable,
} from "../../shared/paths.ts";
import { backoff, type Change, CONFLICT, getAll, MAX_ATTEMPTS, Packer, retry } from "./_atomic.ts";
import { ensureDirs } from "./_dirs.ts";
import {
  childrenPrefix,
  deepDescendantsRange,
  dirVersionKey,
  entryKey,
  generationKey,
  heldKey,
  heldPrefix,
  MAX_HOLDERS,
  MAX_STORED_PATH_BYTES,
  NUMBER_BYTES,
  type RemergeMark,
  remergeMarkKey,
  storedBytes,
  type StoredDir,
  type StoredEntry,
  type StoredFile,
  subDirVersionsRange,
  SYSTEM_OWNER,
  toEntry,
  utf8Length,
} from "./_keys.ts";
import { ReadCache, watchWrites } from "./_cache.ts";
import { KvRemerge } from "./_remerge.ts";
import {
  type DirEntry,
  type Entry,
  type FileEntry,
  type Filelist,
  FilelistError,
  type FileRecord,
  type HeldTotals,
  type Remerge,
  type RemergeOptions,
} from "./types.ts";

const log = getLogger(["drftpd", "master", "filelist"]);

/** Entries moved per atomic operation by a directory rename (fewer if they hold many slaves). */
const RENAME_CHUNK = 200;

/** The filelist stored in Deno KV. The caller owns `kv` and closes it. */
export class KvFilelist implements Filelist {
  #kv: Deno.Kv;
  #entries: ReadCache<StoredEntry | null>;
  #lists: ReadCache<readonly (readonly [string, StoredEntry])[]>;

  /**
   * Uses `kv`, which the caller opened and will close, and which nothing else writes while this
   * filelist is in use. Entries and directory listings read are cached, each cache holding up
   * to `cacheEntries` entries (0 = no cache); every write made through this filelist drops what
   * it touches (see `_cache.ts`).
   */
  constructor(kv: Deno.Kv, options: { cacheEntries?: number } = {}) {
    this.#entries = new ReadCache(options.cacheEntries);
    this.#lists = new ReadCache(options.cacheEntries);
    this.#kv = watchWrites(kv, (keys) => this.#written(keys));
  }

  #written(keys: readonly Deno.KvKey[]): void {
    this.#entries.bump();
    this.#lists.bump();
    for (const key of keys) {
      if (key[0] !== "fs") continue;
      const dir = key[1] as string;
      this.#entries.delete(joinPath(dir, key[2] as string));
      this.#lists.delete(dir);
    }
  }

  /**
   * Files and folders in the filelist, counted from KV (no cache: it also proves KV is readable).
   * Counting stops at `max`; a million entries take about a second.
   */
  async countEntries(max = 10_000_000): Promise<number> {
    let n = 0;
    for await (const _ of this.#kv.list({ prefix: ["fs"] }, { batchSize: 1000 })) {
      if (++n >= max) break;
    }
    return n;
  }

  /** Reads one key straight from KV (no cache); throws when KV cannot be read. */
  async checkReadable(): Promise<void> {
    await this.#kv.get(entryKey("/.drftpd-health"));
  }

  /** The entry at `path`, or null. "/" is always a directory owned by drftpd. */
  async get(path: string): Promise<Entry | null> {
    checkPath(path);
    if (path === "/") return rootEntry();
    const stored = await this.#stored(path);
    return stored ? toEntry(baseName(path), stored) : null;
  }

  /** The stored entry at `path` (not "/"), from the cache or KV. */
  async #stored(path: string): Promise<StoredEntry | null> {
    const hit = this.#entries.get(path);
    if (hit !== undefined) return hit;
    const gen = this.#entries.generation;
    const r = await this.#kv.get<StoredEntry>(entryKey(path));
    this.#entries.put(path, r.value, gen);
    return r.value;
  }

  /** The entries of directory `path`, in KV order (UTF-8 byte order of names = code point order). */
  async list(path: string): Promise<Entry[]> {
    checkPath(path);
    if (path !== "/") {
      const stored = await this.#stored(path);
      if (!stored) throw new FilelistError("not_found", `No such directory: "${path}"`);
      if (stored.kind !== "dir") {
        throw new FilelistError("not_a_dir", `Not a directory: "${path}"`);
      }
    }
    let children = this.#lists.get(path);
    if (children === undefined) {
      const gen = this.#lists.generation;
      const read: (readonly [string, StoredEntry])[] = [];
      const it = this.#kv.list<StoredEntry>({ prefix: childrenPrefix(path) }, {
        batchSize: 1000,
      });
      for await (const r of it) read.push([r.key[2] as string, r.value]);
      this.#lists.put(path, read, gen, read.length + 1);
      children = read;
    }
    return children.map(([name, stored]) => toEntry(name, stored));
  }

  /** Creates a directory; its parent must exist. Throws exists / not_found / not_a_dir. */
  async mkdir(path: string, owner: string, group: string): Promise<DirEntry> {
    checkPath(path);
    if (path === "/") throw new FilelistError("exists", `Directory exists: "/"`);
    const parent = parentOf(path);
    return await retry(`mkdir "${path}"`, async () => {
      const [p, e] = await this.#readPair(parent, path);
      if (e.value) throw new FilelistError("exists", `Already exists: "${path}"`);
      checkParent(parent, p);
      const dir: StoredDir = { kind: "dir", mtime: Date.now(), owner, group };
      const ok = await this.#commit({
        checks: [e, ...(parent === "/" ? [] : [p])],
        sets: [{ key: entryKey(path), value: dir, bytes: storedBytes(dir) }],
        touchDirs: [parent, path],
      });
      return ok ? { ...dir, name: baseName(path) } : CONFLICT;
    });
  }

  /** Creates every missing directory of `path` (mkdir -p). Throws not_a_dir if a file is in the way. */
  async mkdirs(path: string, owner: string, group: string): Promise<void> {
    checkPath(path);
    if (path === "/") return;
    await retry(`mkdirs "${path}"`, async () => {
      const blocked = await ensureDirs(this.#kv, [path], owner, group, new Map());
      if (blocked === CONFLICT) return CONFLICT;
      const file = blocked.get(path);
      if (file !== undefined) throw new FilelistError("not_a_dir", `Not a directory: "${file}"`);
    });
  }

  /** Removes an empty directory. Throws not_found / not_a_dir / not_empty; RangeError for "/". */
  async rmdir(path: string): Promise<void> {
    checkPath(path);
    if (path === "/") throw new RangeError(`Cannot remove the root directory: "/"`);
    await retry(`rmdir "${path}"`, async () => {
      // Version first: a child created after this read changes it and fails the commit.
      const dv = await this.#kv.get(dirVersionKey(path));
      const e = await this.#kv.get<StoredEntry>(entryKey(path));
      if (!e.value) throw new FilelistError("not_found", `No such directory: "${path}"`);
      if (e.value.kind !== "dir") {
        throw new FilelistError("not_a_dir", `Not a directory: "${path}"`);
      }
      for await (const _ of this.#kv.list({ prefix: childrenPrefix(path) }, { limit: 1 })) {
        throw new FilelistError("not_empty", `Directory not empty: "${path}"`);
      }
      const ok = await this.#commit({
        checks: [e, dv],
        deletes: [entryKey(path), dirVersionKey(path)],
        touchDirs: [parentOf(path)],
      });
      return ok ? undefined : CONFLICT;
    });
  }

  /** Creates or replaces a file entry; the parent must exist. Updates the holder index. */
  async putFile(path: string, rec: FileRecord): Promise<FileEntry> {
    checkPath(path);
    if (path === "/") throw new FilelistError("not_a_file", `Not a file: "/"`);
    const slaves = checkHolders(rec.slaves);
    checkSize(rec.size, path);
    const parent = parentOf(path);
    return await retry(`putFile "${path}"`, async () => {
      const [p, e, ...gens] = await getAll<unknown>(this.#kv, [
        entryKey(parent),
        entryKey(path),
        ...slaves.map(generationKey),
      ]);
      checkParent(parent, p as Deno.KvEntryMaybe<StoredEntry>);
      const old = e!.value as StoredEntry | null;
      if (old?.kind === "dir") throw new FilelistError("not_a_file", `Is a directory: "${path}"`);
      const file: StoredFile = {
        kind: "file",
        size: rec.size,
        mtime: rec.mtime,
        owner: rec.owner,
        group: rec.group,
        crc32: rec.crc32,
        slaves,
        xferMs: rec.xferMs,
        ...(rec.incomplete ? { incomplete: true } : {}),
      };
      const change: Change = {
        checks: [e!, ...gens, ...(parent === "/" ? [] : [p!])].map(stamp),
        sets: [{ key: entryKey(path), value: file, bytes: storedBytes(file) }],
        deletes: (old?.slaves ?? []).filter((s) => !slaves.includes(s)).map((s) =>
          heldKey(s, path)
        ),
        touchDirs: [parent],
      };
      slaves.forEach((s, i) => change.sets!.push(heldSet(s, path, gens[i]!.value)));
      return await this.#commit(change) ? { ...file, name: baseName(path) } : CONFLICT;
    });
  }

  /** The file at `path` with its record's versionstamp (not cached), or null. */
  async getFileVersion(path: string): Promise<{ file: FileEntry; version: string } | null> {
    checkPath(path);
    if (path === "/") return null;
    const e = await this.#kv.get<StoredEntry>(entryKey(path));
    if (e.value?.kind !== "file" || e.versionstamp === null) return null;
    return { file: toEntry(baseName(path), e.value) as FileEntry, version: e.versionstamp };
  }

  /** Sets the CRC32 of the file at `path` if its record is still at `version`; false if not. */
  async setCrc32(path: string, crc32: number, version: string): Promise<boolean> {
    checkPath(path);
    if (!Number.isInteger(crc32) || crc32 < 0 || crc32 > 0xffffffff) {
      throw new RangeError(`Invalid CRC32 for "${path}": ${crc32}`);
    }
    if (path === "/") return false;
    const e = await this.#kv.get<StoredEntry>(entryKey(path));
    if (e.versionstamp !== version || e.value?.kind !== "file") return false;
    const file: StoredFile = { ...e.value, crc32 };
    // One attempt: a failed check means the record changed, which is the answer, not a retry.
    return await this.#commit({
      checks: [stamp(e)],
      sets: [{ key: entryKey(path), value: file, bytes: storedBytes(file) }],
      touchDirs: [parentOf(path)],
    });
  }

  /** Deletes a file entry (and its holder index keys) and returns it. Throws not_found / not_a_file. */
  async deleteFile(path: string): Promise<FileEntry> {
    checkPath(path);
    return await retry(`deleteFile "${path}"`, async () => {
      const e = await this.#readFile(path);
      const ok = await this.#commit({
        checks: [stamp(e)],
        deletes: [entryKey(path), ...e.value.slaves.map((s) => heldKey(s, path))],
        touchDirs: [parentOf(path)],
      });
      return ok ? { ...e.value, name: baseName(path) } : CONFLICT;
    });
  }

  /**
   * Renames a file or a whole directory tree. Throws not_found (source or target parent) /
   * exists / not_a_dir (target parent); RangeError for "/" or a directory moved into itself.
   * A directory rename is not atomic as a whole (see the module documentation).
   */
  async rename(from: string, to: string): Promise<void> {
    checkPath(from);
    checkPath(to);
    if (from === "/") throw new RangeError(`Cannot rename the root directory: "/"`);
    if (to === "/") throw new FilelistError("exists", `Already exists: "/"`);
    const toParent = parentOf(to);
    const moved = await retry(`rename "${from}"`, async () => {
      const [src, dst, tp] = await getAll<StoredEntry>(this.#kv, [
        entryKey(from),
        entryKey(to),
        entryKey(toParent),
      ]);
      if (!src!.value) throw new FilelistError("not_found", `No such file or directory: "${from}"`);
      if (from === to) return null;
      if (dst!.value) throw new FilelistError("exists", `Already exists: "${to}"`);
      checkParent(toParent, tp!);
      const checks = [src!, dst!, ...(toParent === "/" ? [] : [tp!])].map(stamp);
      const value = src!.value;
      if (value.kind === "dir") {
        if (isWithin(to, from)) {
          throw new RangeError(`Cannot move a directory into itself: "${from}" to "${to}"`);
        }
        // Step 1: the target directory appears; the source stays until its content has moved.
        const ok = await this.#commit({
          checks,
          sets: [{ key: entryKey(to), value, bytes: storedBytes(value) }],
          touchDirs: [toParent, to],
        });
        return ok ? value : CONFLICT;
      }
      const held = await getAll<number>(this.#kv, value.slaves.map((s) => heldKey(s, from)));
      const change: Change = {
        checks: [...checks, ...held.map(stamp)],
        sets: [{ key: entryKey(to), value, bytes: storedBytes(value) }],
        deletes: [entryKey(from)],
        touchDirs: [parentOf(from), toParent],
      };
      value.slaves.forEach((s, i) => {
        change.deletes!.push(heldKey(s, from));
        change.sets!.push(heldSet(s, to, held[i]!.value));
      });
      return await this.#commit(change) ? value : CONFLICT;
    });
    if (moved?.kind === "dir") await this.#moveTree(from, to);
  }

  /** Adds `slave` to a file's holders (no-op if already there). Throws not_found / not_a_file. */
  async addHolder(path: string, slave: string): Promise<void> {
    checkPath(path);
    checkHolders([slave]);
    await retry(`addHolder "${path}"`, async () => {
      const e = await this.#readFile(path);
      if (e.value.slaves.includes(slave)) return;
      if (e.value.slaves.length >= MAX_HOLDERS) {
        throw new RangeError(`Too many holders for "${path}": ${e.value.slaves.length}`);
      }
      const gen = await this.#kv.get<number>(generationKey(slave));
      const file: StoredFile = { ...e.value, slaves: [...e.value.slaves, slave] };
      const ok = await this.#commit({
        checks: [stamp(e), stamp(gen)],
        sets: [
          { key: entryKey(path), value: file, bytes: storedBytes(file) },
          heldSet(slave, path, gen.value),
        ],
        touchDirs: [parentOf(path)],
      });
      return ok ? undefined : CONFLICT;
    });
  }

  /** Sets the modification time (ms) of a file or directory (not "/"). Throws not_found. */
  async setMtime(path: string, mtime: number): Promise<Entry> {
    checkPath(path);
    if (path === "/") throw new RangeError(`Cannot set the time of the root directory: "/"`);
    if (!Number.isSafeInteger(mtime)) throw new RangeError(`Invalid mtime for "${path}": ${mtime}`);
    return await retry(`setMtime "${path}"`, async () => {
      const e = await this.#kv.get<StoredEntry>(entryKey(path));
      if (!e.value) throw new FilelistError("not_found", `No such file or directory: "${path}"`);
      const value: StoredEntry = { ...e.value, mtime };
      const ok = await this.#commit({
        checks: [stamp(e)],
        sets: [{ key: entryKey(path), value, bytes: storedBytes(value) }],
        touchDirs: [parentOf(path)],
      });
      return ok ? toEntry(baseName(path), value) : CONFLICT;
    });
  }

  /** Removes `slave` from a file's holders; deletes the entry when nobody holds it (returns true). */
  async removeHolder(path: string, slave: string): Promise<boolean> {
    checkPath(path);
    return await retry(`removeHolder "${path}"`, async () => {
      const e = await this.#readFile(path);
      if (!e.value.slaves.includes(slave)) return false;
      const slaves = e.value.slaves.filter((s) => s !== slave);
      const file: StoredFile = { ...e.value, slaves };
      const ok = await this.#commit({
        checks: [stamp(e)],
        sets: slaves.length ? [{ key: entryKey(path), value: file, bytes: storedBytes(file) }] : [],
        deletes: slaves.length ? [heldKey(slave, path)] : [heldKey(slave, path), entryKey(path)],
        touchDirs: [parentOf(path)],
      });
      return ok ? slaves.length === 0 : CONFLICT;
    });
  }

  /** Paths of all files the holder index records for `slave`, in KV order. */
  async *filesHeldBy(slave: string): AsyncIterable<string> {
    const it = this.#kv.list<number>({ prefix: heldPrefix(slave) }, { batchSize: 1000 });
    for await (const r of it) yield r.key[2] as string;
  }

  /**
   * Files and bytes `slave` holds, counted now: the holder index gives the paths, their entries
   * the sizes (read GET_MANY_LIMIT at a time). Stops after `limit` files (`complete` false).
   */
  async heldTotals(slave: string, limit = 1_000_000): Promise<HeldTotals> {
    const totals = { files: 0, bytes: 0, complete: true };
    const count = async (keys: Deno.KvKey[]) => {
      for (const r of await getAll<StoredEntry>(this.#kv, keys)) {
        if (r.value?.kind !== "file") continue;
        totals.files++;
        totals.bytes += r.value.size;
      }
    };
    let keys: Deno.KvKey[] = [];
    let seen = 0;
    for await (const path of this.filesHeldBy(slave)) {
      if (seen++ >= limit) {
        totals.complete = false;
        break;
      }
      keys.push(entryKey(path));
      if (keys.length === 100) (await count(keys), keys = []);
    }
    await count(keys);
    return totals;
  }

  /**
   * Starts reconciling an inventory of `slave` (full, or partial with `options.partial`): takes
   * the next remerge generation. Only one remerge per slave may run at a time; starting a new
   * one supersedes the old one (its `finish()` then throws).
   */
  async beginRemerge(slave: string, options: RemergeOptions = {}): Promise<Remerge> {
    checkHolders([slave]);
    const gen = await retry(`beginRemerge "${slave}"`, async () => {
      const cur = await this.#kv.get<number>(generationKey(slave));
      const next = (cur.value ?? 0) + 1;
      const res = await this.#kv.atomic().check(cur).set(generationKey(slave), next).commit();
      return res.ok ? next : CONFLICT;
    });
    return new KvRemerge(this.#kv, slave, gen, options);
  }

  /** When the scan of `slave`'s last completed remerge started (slave clock), or 0. */
  async remergeSince(slave: string): Promise<number> {
    checkHolders([slave]);
    const r = await this.#kv.get<RemergeMark>(remergeMarkKey(slave));
    const t = r.value?.scannedAt;
    return typeof t === "number" && Number.isSafeInteger(t) && t > 0 ? t : 0;
  }

  /** Commits one change (with its dv touches). False on a failed check. */
  #commit(change: Change): Promise<boolean> {
    const packer = new Packer(this.#kv);
    return packer.add(change).then((ok) => ok && packer.flush());
  }

  async #readPair(
    parent: string,
    path: string,
  ): Promise<[Deno.KvEntryMaybe<StoredEntry>, Deno.KvEntryMaybe<StoredEntry>]> {
    const [p, e] = await this.#kv.getMany<[StoredEntry, StoredEntry]>([
      entryKey(parent),
      entryKey(path),
    ]);
    return [p, e];
  }

  async #readFile(path: string): Promise<Deno.KvEntry<StoredFile>> {
    if (path === "/") throw new FilelistError("not_a_file", `Not a file: "/"`);
    const e = await this.#kv.get<StoredEntry>(entryKey(path));
    if (!e.value) throw new FilelistError("not_found", `No such file: "${path}"`);
    if (e.value.kind !== "file") throw new FilelistError("not_a_file", `Not a file: "${path}"`);
    return e as Deno.KvEntry<StoredFile>;
  }

  /**
   * Steps 2 and 3 of a directory rename: moves every entry below `from` to below `to` in chunks
   * (directories are copied, files moved with their holder keys), repeating until a pass finds
   * nothing left to move, then deletes the old directories and their version keys.
   */
  async #moveTree(from: string, to: string): Promise<void> {
    const copied = new Set<string>();
    for (;;) {
      await this.#movePasses(from, to, copied);
      // Step 3: only copied directories should be left under `from`.
      const doomed: Deno.KvKey[] = [];
      let straggler = false;
      for await (const r of this.#subtree(from)) {
        if (r.value.kind === "file" || !copied.has(keyPath(r.key))) {
          straggler = true; // created concurrently: move it too
          break;
        }
        doomed.push(r.key);
      }
      if (straggler) continue;
      for await (const r of this.#kv.list(subDirVersionsRange(from))) doomed.push(r.key);
      for (let i = 0; i < doomed.length; i += 500) {
        const op = this.#kv.atomic();
        for (const k of doomed.slice(i, i + 500)) op.delete(k);
        await op.commit();
      }
      await this.#kv.atomic()
        .delete(entryKey(from))
        .delete(dirVersionKey(from))
        .set(dirVersionKey(parentOf(from)), Date.now())
        .commit();
      log.debug("Renamed directory {from} to {to}", { from, to });
      return;
    }
  }

  /** Moves files and copies directories from below `from` to below `to` until none is left. */
  async #movePasses(from: string, to: string, copied: Set<string>): Promise<void> {
    const target = (p: string) => to + p.slice(from.length);
    let conflicts = 0;
    for (;;) {
      let pending = 0;
      let ok = true;
      let chunk: Deno.KvEntry<StoredEntry>[] = [];
      const flushChunk = async () => {
        const files = chunk.filter((r) => r.value.kind === "file") as Deno.KvEntry<StoredFile>[];
        const held = await getAll<number>(
          this.#kv,
          files.flatMap((r) => r.value.slaves.map((s) => heldKey(s, keyPath(r.key)))),
        );
        const packer = new Packer(this.#kv);
        let h = 0;
        for (const r of chunk) {
          const path = keyPath(r.key);
          const dest = target(path);
          const v = r.value;
          if (v.kind === "dir") {
            ok &&= await packer.add({
              sets: [{ key: entryKey(dest), value: v, bytes: storedBytes(v) }],
              touchDirs: [parentOf(dest), dest],
              done: () => copied.add(path),
            });
            continue;
          }
          const change: Change = {
            checks: [stamp(r), { key: entryKey(dest), versionstamp: null }],
            sets: [{ key: entryKey(dest), value: v, bytes: storedBytes(v) }],
            deletes: [entryKey(path)],
            touchDirs: [parentOf(path), parentOf(dest)],
          };
          for (const s of v.slaves) {
            const hr = held[h++]!;
            change.checks!.push(stamp(hr));
            change.deletes!.push(heldKey(s, path));
            change.sets!.push(heldSet(s, dest, hr.value));
          }
          ok &&= await packer.add(change);
        }
        ok &&= await packer.flush();
        chunk = [];
      };
      for await (const r of this.#subtree(from)) {
        if (r.value.kind === "dir" && copied.has(keyPath(r.key))) continue;
        pending++;
        chunk.push(r);
        if (chunk.length >= RENAME_CHUNK) await flushChunk();
        if (!ok) break;
      }
      if (ok && chunk.length) await flushChunk();
      if (ok && pending === 0) return;
      if (!ok) {
        if (++conflicts >= MAX_ATTEMPTS) {
          throw new Error(`Filelist contention: rename of "${from}" gave up; it is partly done`);
        }
        await backoff(conflicts);
      }
    }
  }

  /** Every entry below `dir`: its children first, then deeper levels, parents before children. */
  async *#subtree(dir: string): AsyncIterable<Deno.KvEntry<StoredEntry>> {
    yield* this.#kv.list<StoredEntry>({ prefix: childrenPrefix(dir) }, { batchSize: 500 });
    yield* this.#kv.list<StoredEntry>(deepDescendantsRange(dir), { batchSize: 500 });
  }
}

/** The implicit root directory. */
function rootEntry(): DirEntry {
  return { kind: "dir", name: "", mtime: 0, owner: SYSTEM_OWNER, group: SYSTEM_OWNER };
}

/** The path of an entry key. */
function keyPath(key: Deno.KvKey): string {
  return joinPath(key[1] as string, key[2] as string);
}

/** A check that the key still has the versionstamp read. */
function stamp(e: Deno.KvEntryMaybe<unknown>): { key: Deno.KvKey; versionstamp: string | null } {
  return { key: e.key, versionstamp: e.versionstamp };
}

/** The holder-index set for `slave` holding `path`, at generation `gen` (0 if none yet). */
function heldSet(slave: string, path: string, gen: unknown) {
  return {
    key: heldKey(slave, path),
    value: typeof gen === "number" ? gen : 0,
    bytes: NUMBER_BYTES,
  };
}

/** Throws unless the parent entry read is a directory ("/" always is). */
function checkParent(parent: string, p: Deno.KvEntryMaybe<StoredEntry>): void {
  if (parent === "/") return;
  if (!p.value) throw new FilelistError("not_found", `No such directory: "${parent}"`);
  if (p.value.kind !== "dir") throw new FilelistError("not_a_dir", `Not a directory: "${parent}"`);
}

/** Throws TypeError unless `path` is normalised, RangeError if it is too long to be a KV key. */
export function checkPath(path: string): void {
  if (typeof path !== "string" || !isNormalized(path)) {
    throw new TypeError(`Not a normalised path: "${printable(String(path))}"`);
  }
  if (path.length > MAX_STORED_PATH_BYTES / 3 && utf8Length(path) > MAX_STORED_PATH_BYTES) {
    throw new RangeError(`Path too long for the filelist: "${path.slice(0, 60)}…"`);
  }
}

// deno-lint-ignore no-control-regex
const BAD_SLAVE_CHAR = /[\x00-\x1f\x7f/]/;

/** Validates and deduplicates holder names. */
function checkHolders(slaves: readonly string[]): string[] {
  for (const s of slaves) {
    if (typeof s !== "string" || s.length === 0 || s.length > 64 || BAD_SLAVE_CHAR.test(s)) {
      throw new TypeError(`Invalid slave name: "${printable(String(s))}"`);
    }
  }
  const out = [...new Set(slaves)];
  if (out.length > MAX_HOLDERS) throw new RangeError(`Too many holders: ${out.length}`);
  return out;
}

/** Throws RangeError unless `size` is a non-negative safe integer. */
function checkSize(size: number, path: string): void {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new RangeError(`Invalid size for "${path}": ${size}`);
  }
}
