/**
 * Remerge: reconciling a slave's inventory with the filelist. Internal; created by
 * `KvFilelist.beginRemerge`.
 *
 * Every file the slave reports and still holds gets `["held", slave, path] = gen`, the
 * generation taken when the remerge began (a partial remerge only remembers, in memory, the
 * files it already held unchanged: no write for them). Holder keys written by uploads during the
 * remerge carry the current generation too, so they survive `finish()`, which:
 *
 * - full remerge: removes the slave from every file whose holder key is older;
 * - partial remerge (the slave listed only the directories changed since its last remerge):
 *   for every directory the slave listed completely, removes it from the files directly in it
 *   whose holder key is older, and from every file under the subdirectories the filelist has
 *   there and the slave no longer has (then removes those subtrees when nothing is left in
 *   them). Directories it did not list keep their holders.
 *
 * A partial remerge also notes the subdirectories of listed directories under which the
 * filelist records no file of the slave (checked when the listing arrives, before anything
 * under it): a directory moved in from elsewhere keeps the old mtimes of its own subdirectories,
 * so the slave is asked to list those subtrees in full (`takeRescans`).
 *
 * Work is done in batches of at most BATCH entries, each guarded by the `dv` versions of the
 * directories it touches (one check per directory), committed in as few atomic operations as
 * KV's limits allow: other filelist operations interleave between them.
 */
import { getLogger } from "@logtape/logtape";
import { isNormalized, joinPath, parentOf, printable } from "../../shared/paths.ts";
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
  type StoredEntry,
  type StoredFile,
  SYSTEM_OWNER,
  utf8Length,
} from "./_keys.ts";
import type { Collision, ListedDirectory, Remerge, RemergeOptions, RemergeStats } from "./types.ts";

const log = getLogger(["drftpd", "master", "filelist"]);

/** Entries reconciled per batch. */
const BATCH = 1000;

/** Stale holder keys removed per batch by finish(). */
const FINISH_BATCH = 1000;

/** Collisions kept for `takeCollisions` between two calls; more are only logged as conflicts. */
const MAX_COLLISIONS = 10_000;

/** Per-file warnings logged per remerge; the rest are only counted. */
const MAX_WARNINGS = 100;

/** KV reads a partial remerge keeps in flight (subdirectory checks, listed directories). */
const PARALLEL_READS = 32;

/**
 * Partial remerges remember up to this many reported, unchanged files in memory instead of
 * rewriting their holder keys (~60 MB at most); beyond it they are stamped like in a full one.
 */
const MAX_REMEMBERED = 500_000;

/** One entry of a slave's inventory. */
interface Item {
  path: string;
  name: string;
  size: number;
  mtime: number;
}

/** A directory a partial remerge saw listed: its subdirectories so far, and whether that is all. */
interface Listing {
  subdirs: Set<string>;
  complete: boolean;
}

/** An open remerge of one slave. */
export class KvRemerge implements Remerge {
  #kv: Deno.Kv;
  #slave: string;
  #gen: number;
  #finished = false;
  #warnings = 0;
  #stats: RemergeStats = {
    seen: 0,
    added: 0,
    removed: 0,
    dropped: 0,
    resized: 0,
    conflicts: 0,
    listed: 0,
    pruned: 0,
  };
  /** Whether this remerge is partial. */
  readonly partial: boolean;
  #protect: (path: string) => boolean;
  /** Partial: the directories the slave listed. */
  #listed = new Map<string, Listing>();
  /** Partial: subtrees to have the slave list in full; null once `takeRescans` took over. */
  #unknown: Set<string> | null = new Set();
  #rescans: string[] = [];
  /** Partial: files reported and already held as reported (their holder keys are not rewritten). */
  #reported = new Set<string>();
  /** Collisions not taken yet (`takeCollisions`). */
  #collisions: Collision[] = [];

  /** A remerge of `slave` at generation `gen` (already stored by the caller). */
  constructor(kv: Deno.Kv, slave: string, gen: number, options: RemergeOptions = {}) {
    this.#kv = kv;
    this.#slave = slave;
    this.#gen = gen;
    this.partial = options.partial ?? false;
    this.#protect = options.protect ?? (() => false);
  }

  /** Reconciles one batch of the slave's inventory (any size; processed in chunks). */
  async add(
    entries: readonly { path: string; size: number; mtime: number }[],
    dirs: readonly ListedDirectory[] = [],
  ): Promise<void> {
    if (this.#finished) throw new Error(`Remerge of "${this.#slave}" already finished`);
    // Listings first: their subdirectories are checked before anything under them is added.
    if (this.partial && dirs.length > 0) await this.#addListings(dirs);
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

  /** The collisions found since the last call (see `Remerge.takeCollisions`). */
  takeCollisions(): Collision[] {
    return this.#collisions.splice(0);
  }

  /** The next at most `max` subtrees the slave must list in full (see the module doc). */
  takeRescans(max: number): string[] {
    if (this.#unknown !== null) {
      // Outermost paths only: listing a subtree lists everything below it too.
      const roots = new Set<string>();
      for (const p of [...this.#unknown].sort((a, b) => a.length - b.length)) {
        let inside = false;
        for (let a = parentOf(p); a !== "/" && !inside; a = parentOf(a)) inside = roots.has(a);
        if (!inside) roots.add(p);
      }
      this.#rescans = [...roots].sort();
      this.#unknown = null;
    }
    return this.#rescans.splice(0, Math.max(0, max));
  }

  /** Finishes (see `Remerge.finish`) and records `scannedAt`; returns the counters. */
  async finish(scannedAt?: number): Promise<RemergeStats> {
    if (this.#finished) throw new Error(`Remerge of "${this.#slave}" already finished`);
    this.#finished = true;
    await this.#current();
    if (this.partial) await this.#finishListed();
    else await this.#sweep();
    if (scannedAt !== undefined) await this.#mark(scannedAt);
    if (this.#warnings > MAX_WARNINGS) {
      log.warn("Remerge of {slave}: {n} more conflicts not logged", {
        slave: this.#slave,
        n: this.#warnings - MAX_WARNINGS,
      });
    }
    return { ...this.#stats };
  }

  /** Records that this remerge completed, unless a newer one started. */
  async #mark(scannedAt: number): Promise<void> {
    const g = await this.#current();
    const mark: RemergeMark = { scannedAt, finishedAt: Date.now(), partial: this.partial };
    const res = await this.#kv.atomic().check(g).set(remergeMarkKey(this.#slave), mark).commit();
    if (!res.ok) throw new Error(`Remerge of "${this.#slave}" was superseded by a newer one`);
  }

  /** Full remerge: drops the slave from every file whose holder key is older than this remerge. */
  async #sweep(): Promise<void> {
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
  }

  /** Partial remerge: records listings; notes subdirectories with nothing of this slave under them. */
  async #addListings(dirs: readonly ListedDirectory[]): Promise<void> {
    const check: string[] = [];
    for (const d of dirs) {
      if (!validListing(d)) {
        this.#conflict(`invalid directory listing ${printable(JSON.stringify(d) ?? "")}`);
        continue;
      }
      if (this.#protect(d.path)) continue; // renamed in the filelist while the slave was away
      let listing = this.#listed.get(d.path);
      if (!listing || listing.complete) {
        listing = { subdirs: new Set(), complete: false };
        this.#listed.set(d.path, listing);
      }
      for (const name of d.subdirs) {
        listing.subdirs.add(name);
        if (this.#unknown) check.push(joinPath(d.path, name));
      }
      if (d.complete) listing.complete = true;
    }
    for (let i = 0; i < check.length; i += PARALLEL_READS) {
      const part = check.slice(i, i + PARALLEL_READS);
      const holds = await Promise.all(part.map((p) => this.#holdsUnder(p)));
      part.forEach((p, j) => {
        if (!holds[j]) this.#unknown?.add(p);
      });
    }
  }

  /** Whether the holder index records any file of this slave under directory `dir`. */
  async #holdsUnder(dir: string): Promise<boolean> {
    const it = this.#kv.list({
      start: heldKey(this.#slave, dir + "/"),
      end: heldKey(this.#slave, dir + "0"),
    }, {
      limit: 1,
    });
    for await (const _ of it) return true;
    return false;
  }

  /** Partial remerge: reconciles every completely listed directory (see the module doc). */
  async #finishListed(): Promise<void> {
    const dirs = [...this.#listed].filter(([, l]) => l.complete);
    const stale: string[] = [];
    const vanished: string[] = [];
    for (let i = 0; i < dirs.length; i += PARALLEL_READS) {
      const part = dirs.slice(i, i + PARALLEL_READS);
      const found = await Promise.all(part.map(([dir, l]) => this.#examine(dir, l.subdirs)));
      for (const f of found) {
        stale.push(...f.stale);
        vanished.push(...f.vanished);
      }
    }
    this.#stats.listed += dirs.length;
    for (let i = 0; i < stale.length; i += FINISH_BATCH) {
      await this.#dropBatch(stale.slice(i, i + FINISH_BATCH));
    }
    for (const dir of vanished) this.#stats.pruned += await this.#prune(dir);
  }

  /**
   * One listed directory: the files directly in it this slave holds and did not report, the
   * files under its subdirectories the slave no longer has, and those of the latter under which
   * this slave held something (candidates for pruning).
   */
  async #examine(
    dir: string,
    subdirs: ReadonlySet<string>,
  ): Promise<{ stale: string[]; vanished: string[] }> {
    const slave = this.#slave;
    let files: string[] = [];
    const gone: string[] = [];
    let anyDir = false;
    const it = this.#kv.list<StoredEntry>({ prefix: childrenPrefix(dir) }, { batchSize: 1000 });
    for await (const r of it) {
      const path = joinPath(dir, r.key[2] as string);
      if (r.value.kind === "dir") {
        anyDir = true;
        if (!subdirs.has(r.key[2] as string)) gone.push(path);
      } else if (r.value.slaves.includes(slave)) files.push(path);
    }
    const stale: string[] = [];
    const old = (gen: unknown) => typeof gen !== "number" || gen < this.#gen;
    files = files.filter((p) => !this.#reported.has(p));
    if (files.length > 0 && !anyDir && files.length > 64) {
      // Every holder key under a leaf directory is one of its files: one range read.
      const gens = new Map<string, unknown>();
      const under = dir === "/" ? "/" : dir + "/";
      const end = dir === "/" ? "0" : dir + "0";
      const keys = this.#kv.list({ start: heldKey(slave, under), end: heldKey(slave, end) }, {
        batchSize: 1000,
      });
      for await (const r of keys) gens.set(r.key[2] as string, r.value);
      for (const p of files) if (old(gens.get(p))) stale.push(p);
    } else if (files.length > 0) {
      const gens = await getAll<number>(this.#kv, files.map((p) => heldKey(slave, p)));
      files.forEach((p, i) => {
        if (old(gens[i]!.value)) stale.push(p);
      });
    }
    const vanished: string[] = [];
    for (const g of gone) {
      let held = 0;
      const keys = this.#kv.list({ start: heldKey(slave, g + "/"), end: heldKey(slave, g + "0") }, {
        batchSize: 1000,
      });
      for await (const r of keys) {
        held++;
        const p = r.key[2] as string;
        if (old(r.value) && !this.#reported.has(p)) stale.push(p);
      }
      if (held > 0) vanished.push(g);
    }
    return { stale: stale.filter((p) => !this.#protect(p)), vanished };
  }

  /**
   * Removes directory `root` and everything below it when nothing but directories is left
   * there, deepest first, each only while empty (a concurrent upload stops it). Returns how
   * many directories were removed.
   */
  async #prune(root: string): Promise<number> {
    const dirs = [root];
    const below = [
      this.#kv.list<StoredEntry>({ prefix: childrenPrefix(root) }, { batchSize: 500 }),
      this.#kv.list<StoredEntry>(deepDescendantsRange(root), { batchSize: 500 }),
    ];
    for (const it of below) {
      for await (const r of it) {
        if (r.value.kind === "file") return 0;
        dirs.push(joinPath(r.key[1] as string, r.key[2] as string));
      }
    }
    const depth = (p: string) => p.split("/").length;
    dirs.sort((a, b) => depth(b) - depth(a));
    let removed = 0;
    for (const dir of dirs) if (await this.#removeEmptyDir(dir)) removed++;
    return removed;
  }

  /** Removes directory `dir` if it exists and is empty; false otherwise or on a race. */
  async #removeEmptyDir(dir: string): Promise<boolean> {
    // Version first: an entry created after this read changes it and fails the commit.
    const dv = await this.#kv.get(dirVersionKey(dir));
    const e = await this.#kv.get<StoredEntry>(entryKey(dir));
    if (e.value?.kind !== "dir") return false;
    for await (const _ of this.#kv.list({ prefix: childrenPrefix(dir) }, { limit: 1 })) {
      return false;
    }
    const packer = new Packer(this.#kv);
    const ok = await packer.add({
      checks: [{ key: e.key, versionstamp: e.versionstamp }, {
        key: dv.key,
        versionstamp: dv.versionstamp,
      }],
      deletes: [entryKey(dir), dirVersionKey(dir)],
      touchDirs: [parentOf(dir)],
    });
    return ok && await packer.flush();
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
        // The common incremental case: nothing changes. A partial remerge remembers it; a full
        // one refreshes the holder key's generation.
        if (this.partial && this.#reported.size < MAX_REMEMBERED) {
          this.#reported.add(item.path);
          done.add(item);
          return null;
        }
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
    // A collision: the other holders' size stays; this copy is not added (the caller sets it
    // aside on the slave and logs it).
    this.#stats.conflicts++;
    if (this.#collisions.length < MAX_COLLISIONS) {
      this.#collisions.push({
        path: item.path,
        size: item.size,
        recorded: cur.size,
        holders: others,
      });
    } else {
      this.#conflict(`"${item.path}" is ${item.size} bytes here but ${cur.size} bytes elsewhere`);
    }
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

/** Whether a slave-reported directory listing is usable. */
function validListing(d: ListedDirectory): boolean {
  return typeof d === "object" && d !== null && typeof d.path === "string" &&
    isNormalized(d.path) && utf8Length(d.path) <= MAX_STORED_PATH_BYTES &&
    Array.isArray(d.subdirs) && typeof d.complete === "boolean" &&
    d.subdirs.every((n) =>
      typeof n === "string" && n !== "" && n !== "." && n !== ".." && !n.includes("/") &&
      isNormalized(joinPath(d.path, n))
    );
}

/** Whether a slave-reported entry is usable. */
function validEntry(e: { path: string; size: number; mtime: number }): boolean {
  return typeof e === "object" && e !== null &&
    typeof e.path === "string" && e.path !== "/" && isNormalized(e.path) &&
    utf8Length(e.path) <= MAX_STORED_PATH_BYTES &&
    Number.isSafeInteger(e.size) && e.size >= 0 &&
    typeof e.mtime === "number" && Number.isFinite(e.mtime);
}
