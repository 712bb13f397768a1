/**
 * Remerge: reconciling a slave's full inventory with the filelist. Internal; created by
 * `KvFilelist.beginRemerge`.
 *
 * Every file the slave reports and still holds gets `["held", slave, path] = gen`, the
 * generation taken when the remerge began. `finish()` then removes the slave from every file
 * whose holder key is older. Holder keys written by uploads during the remerge carry the
 * current generation too, so they survive.
 *
 * Work is done in batches of at most BATCH entries, each guarded by the `dv` versions of the
 * directories it touches (one check per directory), committed in as few atomic operations as
 * KV's limits allow: other filelist operations interleave between them.
 */
import { getLogger } from "@logtape/logtape";
import { isNormalized, parentOf, printable } from "../../shared/paths.ts";
import {
  backoff,
  type Change,
  CONFLICT,
  getAll,
  MAX_ATTEMPTS,
  Packer,
  readDirVersions,
} from "./_atomic.ts";
import { ensureDirs } from "./_dirs.ts";
import {
  entryKey,
  generationKey,
  heldKey,
  heldPrefix,
  MAX_HOLDERS,
  MAX_STORED_PATH_BYTES,
  NUMBER_BYTES,
  storedBytes,
  type StoredEntry,
  type StoredFile,
  SYSTEM_OWNER,
  utf8Length,
} from "./_keys.ts";
import type { Remerge, RemergeStats } from "./types.ts";

const log = getLogger(["drftpd", "master", "filelist"]);

/** Entries reconciled per batch. */
const BATCH = 1000;

/** Stale holder keys removed per batch by finish(). */
const FINISH_BATCH = 1000;

/** Per-file warnings logged per remerge; the rest are only counted. */
const MAX_WARNINGS = 100;

/** One entry of a slave's inventory. */
interface Item {
  path: string;
  name: string;
  size: number;
  mtime: number;
}

/** An open remerge of one slave. */
export class KvRemerge implements Remerge {
  #kv: Deno.Kv;
  #slave: string;
  #gen: number;
  #finished = false;
  #warnings = 0;
  #stats: RemergeStats = { seen: 0, added: 0, removed: 0, dropped: 0, resized: 0, conflicts: 0 };

  /** A remerge of `slave` at generation `gen` (already stored by the caller). */
  constructor(kv: Deno.Kv, slave: string, gen: number) {
    this.#kv = kv;
    this.#slave = slave;
    this.#gen = gen;
  }

  /** Reconciles one batch of the slave's inventory (any size; processed in chunks). */
  async add(entries: readonly { path: string; size: number; mtime: number }[]): Promise<void> {
    if (this.#finished) throw new Error(`Remerge of "${this.#slave}" already finished`);
    this.#stats.seen += entries.length;
    // Validate and deduplicate (the last report of a path wins).
    const byPath = new Map<string, Item>();
    for (const e of entries) {
      if (!validEntry(e)) {
        this.#conflict(`invalid entry ${printable(JSON.stringify(e) ?? "")}`);
        continue;
      }
      const i = e.path.lastIndexOf("/");
      byPath.set(e.path, { path: e.path, name: e.path.slice(i + 1), size: e.size, mtime: e.mtime });
    }
    const items = [...byPath.values()];
    for (let i = 0; i < items.length; i += BATCH) await this.#addBatch(items.slice(i, i + BATCH));
  }

  /** Removes the slave from every file it held before and did not report; returns the counters. */
  async finish(): Promise<RemergeStats> {
    if (this.#finished) throw new Error(`Remerge of "${this.#slave}" already finished`);
    this.#finished = true;
    await this.#current();
    let stale: string[] = [];
    const it = this.#kv.list<number>({ prefix: heldPrefix(this.#slave) }, { batchSize: 1000 });
    for await (const r of it) {
      if (typeof r.value === "number" && r.value >= this.#gen) continue;
      stale.push(r.key[2] as string);
      if (stale.length >= FINISH_BATCH) {
        await this.#dropBatch(stale);
        stale = [];
      }
    }
    if (stale.length) await this.#dropBatch(stale);
    if (this.#warnings > MAX_WARNINGS) {
      log.warn("Remerge of {slave}: {n} more conflicts not logged", {
        slave: this.#slave,
        n: this.#warnings - MAX_WARNINGS,
      });
    }
    return { ...this.#stats };
  }

  /** Throws unless this remerge is still the slave's latest. */
  async #current(): Promise<Deno.KvEntryMaybe<number>> {
    const g = await this.#kv.get<number>(generationKey(this.#slave));
    if (g.value !== this.#gen) {
      throw new Error(`Remerge of "${this.#slave}" was superseded by a newer one`);
    }
    return g;
  }

  async #addBatch(batch: Item[]): Promise<void> {
    let pending = batch;
    let stuck = 0;
    for (;;) {
      const done = new Set<Item>();
      await this.#addPass(pending, done);
      pending = pending.filter((x) => !done.has(x));
      if (pending.length === 0) return;
      stuck = done.size ? 0 : stuck + 1;
      if (stuck >= MAX_ATTEMPTS) {
        throw new Error(`Filelist contention: remerge of "${this.#slave}" gave up`);
      }
      await backoff(stuck);
    }
  }

  /** One optimistic attempt at a batch; marks what got committed (or needs no write) in `done`. */
  async #addPass(items: Item[], done: Set<Item>): Promise<void> {
    const groups = new Map<string, Item[]>();
    for (const item of items) {
      const dir = parentOf(item.path);
      const g = groups.get(dir);
      if (g) g.push(item);
      else groups.set(dir, [item]);
    }
    const dirVersions = new Map<string, string | null>();
    const blocked = await ensureDirs(
      this.#kv,
      groups.keys(),
      SYSTEM_OWNER,
      SYSTEM_OWNER,
      dirVersions,
    );
    if (blocked === CONFLICT) return;
    const open = [...groups].filter(([dir, group]) => {
      const file = blocked.get(dir);
      if (file === undefined) return true;
      for (const item of group) {
        this.#conflict(`"${item.path}": "${file}" is a file, not a directory`);
        done.add(item);
      }
      return false;
    });
    const existing = await Promise.all(open.map(([dir, group]) => this.#readGroup(dir, group)));
    const packer = new Packer(this.#kv, dirVersions);
    for (let g = 0; g < open.length; g++) {
      const [dir, group] = open[g]!;
      const found = existing[g]!;
      for (const item of group) {
        const change = this.#plan(dir, item, found.get(item.name) ?? null, done);
        if (change && !await packer.add(change)) return;
      }
    }
    await packer.flush();
  }

  /** The entries of `dir` named in `group`: one range scan, topped up with point reads. */
  async #readGroup(dir: string, group: Item[]): Promise<Map<string, StoredEntry>> {
    const found = new Map<string, StoredEntry>();
    const names = group.map((i) => i.name);
    // JS string order equals KV (UTF-8) order unless surrogates are involved.
    if (!names.some((n) => /[\ud800-\udfff]/.test(n))) {
      let min = names[0]!;
      let max = min;
      for (const n of names) {
        if (n < min) min = n;
        if (n > max) max = n;
      }
      const limit = names.length * 2 + 64;
      let count = 0;
      const it = this.#kv.list<StoredEntry>(
        { start: ["fs", dir, min], end: ["fs", dir, max + "\0"] },
        { limit, batchSize: Math.min(limit, 1000) },
      );
      for await (const r of it) {
        found.set(r.key[2] as string, r.value);
        count++;
      }
      if (count < limit) return found;
    }
    const rest = names.filter((n) => !found.has(n));
    const res = await getAll<StoredEntry>(this.#kv, rest.map((n) => ["fs", dir, n]));
    rest.forEach((n, i) => {
      const v = res[i]!.value;
      if (v) found.set(n, v);
    });
    return found;
  }

  /** What to write for one reported file, or null when nothing is written (conflict). */
  #plan(dir: string, item: Item, cur: StoredEntry | null, done: Set<Item>): Change | null {
    const slave = this.#slave;
    const held = { key: heldKey(slave, item.path), value: this.#gen, bytes: NUMBER_BYTES };
    const key = entryKey(item.path);
    const write = (file: StoredFile, count?: "added" | "resized"): Change => ({
      checkDirs: [dir],
      sets: [{ key, value: file, bytes: storedBytes(file) }, held],
      touchDirs: [dir],
      done: () => {
        if (count) this.#stats[count]++;
        done.add(item);
      },
    });
    if (!cur) {
      return write({
        kind: "file",
        size: item.size,
        mtime: item.mtime,
        owner: SYSTEM_OWNER,
        group: SYSTEM_OWNER,
        crc32: null,
        slaves: [slave],
        xferMs: 0,
      }, "added");
    }
    if (cur.kind === "dir") {
      this.#conflict(`"${item.path}" is a directory in the filelist`);
      done.add(item);
      return null;
    }
    if (cur.size === item.size) {
      if (cur.slaves.includes(slave)) {
        // The common incremental case: only the holder key's generation is refreshed.
        return { checkDirs: [dir], sets: [held], done: () => done.add(item) };
      }
      if (cur.slaves.length >= MAX_HOLDERS) {
        this.#conflict(`"${item.path}" already has ${cur.slaves.length} holders`);
        done.add(item);
        return null;
      }
      return write({ ...cur, slaves: [...cur.slaves, slave] });
    }
    const others = cur.slaves.filter((s) => s !== slave);
    if (others.length === 0) {
      return write(
        { ...cur, size: item.size, mtime: item.mtime, crc32: null, slaves: [slave] },
        "resized",
      );
    }
    this.#conflict(
      `"${item.path}" is ${item.size} bytes here but ${cur.size} bytes on ${
        others.join(", ")
      }; not added`,
    );
    done.add(item);
    return null;
  }

  /** Removes the slave from the files in `paths` whose holder key is (still) stale. */
  async #dropBatch(paths: string[]): Promise<void> {
    let pending = paths;
    let stuck = 0;
    for (;;) {
      const done = new Set<string>();
      await this.#dropPass(pending, done);
      pending = pending.filter((p) => !done.has(p));
      if (pending.length === 0) return;
      stuck = done.size ? 0 : stuck + 1;
      if (stuck >= MAX_ATTEMPTS) {
        throw new Error(`Filelist contention: remerge of "${this.#slave}" gave up`);
      }
      await backoff(stuck);
    }
  }

  async #dropPass(paths: string[], done: Set<string>): Promise<void> {
    const slave = this.#slave;
    const dirVersions = new Map<string, string | null>();
    // Versions first, then entries and holder keys: anything changed in between fails the commit.
    await readDirVersions(this.#kv, new Set(paths.map(parentOf)), dirVersions);
    const gen = await this.#current();
    const read = await getAll<unknown>(this.#kv, [
      ...paths.map(entryKey),
      ...paths.map((p) => heldKey(slave, p)),
    ]);
    const packer = new Packer(this.#kv, dirVersions, [{
      key: gen.key,
      versionstamp: gen.versionstamp,
    }]);
    for (let i = 0; i < paths.length; i++) {
      const path = paths[i]!;
      const dir = parentOf(path);
      const cur = read[i]!.value as StoredEntry | null;
      const held = read[paths.length + i]!.value;
      if (typeof held === "number" && held >= this.#gen) {
        done.add(path); // refreshed meanwhile (upload): keep
        continue;
      }
      let change: Change;
      if (!cur || cur.kind !== "file" || !cur.slaves.includes(slave)) {
        // A dangling index key: just remove it.
        change = { checkDirs: [dir], deletes: [heldKey(slave, path)], done: () => done.add(path) };
      } else {
        const slaves = cur.slaves.filter((s) => s !== slave);
        const file: StoredFile = { ...cur, slaves };
        change = {
          checkDirs: [dir],
          sets: slaves.length
            ? [{ key: entryKey(path), value: file, bytes: storedBytes(file) }]
            : [],
          deletes: slaves.length ? [heldKey(slave, path)] : [heldKey(slave, path), entryKey(path)],
          touchDirs: [dir],
          done: () => {
            this.#stats[slaves.length ? "removed" : "dropped"]++;
            done.add(path);
          },
        };
      }
      if (!await packer.add(change)) return;
    }
    await packer.flush();
  }

  #conflict(what: string): void {
    this.#stats.conflicts++;
    if (++this.#warnings <= MAX_WARNINGS) {
      log.warn("Remerge of {slave}: conflict: {what}", { slave: this.#slave, what });
    }
  }
}

/** Whether a slave-reported entry is usable. */
function validEntry(e: { path: string; size: number; mtime: number }): boolean {
  return typeof e === "object" && e !== null &&
    typeof e.path === "string" && e.path !== "/" && isNormalized(e.path) &&
    utf8Length(e.path) <= MAX_STORED_PATH_BYTES &&
    Number.isSafeInteger(e.size) && e.size >= 0 &&
    typeof e.mtime === "number" && Number.isFinite(e.mtime);
}
