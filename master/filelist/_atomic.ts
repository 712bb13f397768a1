/**
 * Optimistic concurrency helpers for the filelist: a packer that groups logical changes into
 * KV atomic operations within KV's limits, a retry loop, and chunked reads. Internal.
 */
import { dirVersionKey, keyBytes, NUMBER_BYTES } from "./_keys.ts";

/** KV limits (Deno 2): 100 checks, 1000 mutations, 80 KiB of keys, 800 KiB of values per op. */
const MAX_CHECKS = 100;
const MAX_MUTATIONS = 1000;
const MAX_KEY_BYTES = 72 * 1024;
const MAX_VALUE_BYTES = 600 * 1024;

/** `kv.getMany` accepts at most this many keys. */
const GET_MANY_LIMIT = 10;

/** A set in a change, with its estimated serialized size. */
export interface SetOp {
  key: Deno.KvKey;
  value: unknown;
  bytes: number;
}

/**
 * One logical change: all of it commits in one atomic operation, or none of it.
 * `checkDirs`/`touchDirs` name directories whose `dv` key is checked / bumped; the packer
 * deduplicates them per operation and tracks their versionstamps across operations.
 */
export interface Change {
  checks?: { key: Deno.KvKey; versionstamp: string | null }[];
  checkDirs?: string[];
  sets?: SetOp[];
  deletes?: Deno.KvKey[];
  touchDirs?: string[];
  /** Called once the change is committed. */
  done?: () => void;
}

/**
 * Packs changes into as few atomic operations as KV's limits allow and commits them in order.
 * `dirVersions` maps a directory to the versionstamp of its `dv` key as read by the caller
 * (null = absent); every directory a change checks must be in it. After each commit the
 * directories it touched get the commit's versionstamp, so later operations check the right one.
 * After a failed check the packer refuses further work: the caller re-reads and starts over.
 */
export class Packer {
  #kv: Deno.Kv;
  #dirVersions: Map<string, string | null>;
  #op: Deno.AtomicOperation;
  #checks = 0;
  #mutations = 0;
  #keyBytes = 0;
  #valueBytes = 0;
  #checkedDirs = new Set<string>();
  #touchedDirs = new Set<string>();
  #done: (() => void)[] = [];
  #changes = 0;
  #failed = false;
  #now: number;

  #baseChecks: readonly Deno.AtomicCheck[];

  /**
   * Creates a packer over `kv`; `dirVersions` is shared with the caller and updated.
   * `baseChecks` go into every atomic operation (e.g. "this remerge is still the current one").
   */
  constructor(
    kv: Deno.Kv,
    dirVersions: Map<string, string | null> = new Map(),
    baseChecks: readonly Deno.AtomicCheck[] = [],
  ) {
    this.#kv = kv;
    this.#dirVersions = dirVersions;
    this.#baseChecks = baseChecks;
    this.#op = kv.atomic();
    this.#now = Date.now();
    this.#reset();
  }

  /** Number of atomic operations committed so far. */
  commits = 0;

  /** Adds a change, committing the pending operation first if the change would not fit. False after a conflict. */
  async add(change: Change): Promise<boolean> {
    if (this.#failed) return false;
    let cost = this.#cost(change);
    if (this.#changes > 0 && !this.#fits(cost)) {
      if (!await this.flush()) return false;
      cost = this.#cost(change);
    }
    if (!this.#fits(cost)) {
      throw new RangeError(
        `Filelist change too large for one atomic operation: ${JSON.stringify(cost)}`,
      );
    }
    this.#apply(change);
    return true;
  }

  /** Commits the pending operation. False if a check failed (nothing of it was written). */
  async flush(): Promise<boolean> {
    if (this.#failed) return false;
    if (this.#changes === 0) return true;
    for (const dir of this.#touchedDirs) {
      this.#op.set(dirVersionKey(dir), this.#now);
    }
    const res = await this.#op.commit();
    const done = this.#done;
    const touched = this.#touchedDirs;
    this.#reset();
    if (!res.ok) {
      this.#failed = true;
      return false;
    }
    this.commits++;
    for (const dir of touched) this.#dirVersions.set(dir, res.versionstamp);
    for (const f of done) f();
    return true;
  }

  #cost(c: Change): [number, number, number, number] {
    let checks = c.checks?.length ?? 0;
    let mutations = (c.sets?.length ?? 0) + (c.deletes?.length ?? 0);
    let kb = 0;
    let vb = 0;
    for (const x of c.checks ?? []) kb += keyBytes(x.key);
    for (const s of c.sets ?? []) {
      kb += keyBytes(s.key);
      vb += s.bytes;
    }
    for (const d of c.deletes ?? []) kb += keyBytes(d);
    for (const dir of c.checkDirs ?? []) {
      if (this.#checkedDirs.has(dir)) continue;
      checks++;
      kb += keyBytes(dirVersionKey(dir));
    }
    for (const dir of c.touchDirs ?? []) {
      if (this.#touchedDirs.has(dir)) continue;
      mutations++;
      kb += keyBytes(dirVersionKey(dir));
      vb += NUMBER_BYTES;
    }
    return [checks, mutations, kb, vb];
  }

  #fits([checks, mutations, kb, vb]: [number, number, number, number]): boolean {
    return this.#checks + checks <= MAX_CHECKS &&
      this.#mutations + mutations <= MAX_MUTATIONS &&
      this.#keyBytes + kb <= MAX_KEY_BYTES &&
      this.#valueBytes + vb <= MAX_VALUE_BYTES;
  }

  #apply(c: Change): void {
    const [checks, mutations, kb, vb] = this.#cost(c);
    this.#checks += checks;
    this.#mutations += mutations;
    this.#keyBytes += kb;
    this.#valueBytes += vb;
    for (const x of c.checks ?? []) this.#op.check(x);
    for (const dir of c.checkDirs ?? []) {
      if (this.#checkedDirs.has(dir)) continue;
      const versionstamp = this.#dirVersions.get(dir);
      if (versionstamp === undefined) throw new Error(`Directory version of "${dir}" was not read`);
      this.#checkedDirs.add(dir);
      this.#op.check({ key: dirVersionKey(dir), versionstamp });
    }
    for (const s of c.sets ?? []) this.#op.set(s.key, s.value);
    for (const d of c.deletes ?? []) this.#op.delete(d);
    for (const dir of c.touchDirs ?? []) this.#touchedDirs.add(dir);
    if (c.done) this.#done.push(c.done);
    this.#changes++;
  }

  #reset(): void {
    this.#op = this.#kv.atomic();
    this.#checks =
      this.#mutations =
      this.#keyBytes =
      this.#valueBytes =
        0;
    for (const c of this.#baseChecks) {
      this.#op.check(c);
      this.#checks++;
      this.#keyBytes += keyBytes(c.key);
    }
    this.#checkedDirs = new Set();
    this.#touchedDirs = new Set();
    this.#done = [];
    this.#changes = 0;
    this.#now = Date.now();
  }
}

/** Returned by an attempt that lost a race and must be retried. */
export const CONFLICT: unique symbol = Symbol("conflict");

/** Attempts before an operation gives up under contention. */
export const MAX_ATTEMPTS = 40;

/**
 * Runs `attempt` until it returns something other than CONFLICT, with a short randomised backoff.
 * Throws after MAX_ATTEMPTS conflicts.
 */
export async function retry<T>(
  what: string,
  attempt: () => Promise<T | typeof CONFLICT>,
): Promise<T> {
  for (let i = 0; i < MAX_ATTEMPTS; i++) {
    const r = await attempt();
    if (r !== CONFLICT) return r;
    await backoff(i);
  }
  throw new Error(`Filelist contention: ${what} failed after ${MAX_ATTEMPTS} attempts`);
}

/** Sleeps a little longer after each failed attempt (at most ~50 ms). */
export function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(50, 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `kv.getMany` for any number of keys (in chunks of 10, issued concurrently). */
export async function getAll<T>(
  kv: Deno.Kv,
  keys: readonly Deno.KvKey[],
): Promise<Deno.KvEntryMaybe<T>[]> {
  if (keys.length <= GET_MANY_LIMIT) return await kv.getMany<T[]>(keys);
  const parts: Promise<Deno.KvEntryMaybe<T>[]>[] = [];
  for (let i = 0; i < keys.length; i += GET_MANY_LIMIT) {
    parts.push(kv.getMany<T[]>(keys.slice(i, i + GET_MANY_LIMIT)));
  }
  return (await Promise.all(parts)).flat();
}

/** Reads the `dv` versionstamps of `dirs` into `into`. */
export async function readDirVersions(
  kv: Deno.Kv,
  dirs: Iterable<string>,
  into: Map<string, string | null>,
): Promise<void> {
  const list = [...dirs];
  const res = await getAll<number>(kv, list.map(dirVersionKey));
  list.forEach((dir, i) => into.set(dir, res[i]!.versionstamp));
}
