/**
 * A read cache for filelist entries, kept correct by watching every write to the KV handle.
 *
 * The master is the only writer of its KV store, and every filelist write goes through the
 * handle that {@link watchWrites} returns. Any commit (or set/delete) clears the whole cache and
 * bumps a generation; a read that overlapped a write (its generation changed while it was in
 * flight) is not cached. So a cached value is always one that no committed write has replaced.
 *
 * Clearing everything on any write is coarse but leaves nothing to get wrong: the hot path it
 * serves is the control channel's CWD/SIZE/MDTM/RETR lookups, which far outnumber writes.
 */

/** Default number of cached paths before the oldest are dropped. */
export const DEFAULT_CACHE_ENTRIES = 65_536;

/** A bounded path → value cache with a write generation (see the module doc). */
export class ReadCache<V> {
  #map = new Map<string, V>();
  #gen = 0;
  #max: number;

  /** Creates a cache of at most `maxEntries` values (0 disables it). */
  constructor(maxEntries: number = DEFAULT_CACHE_ENTRIES) {
    if (!Number.isInteger(maxEntries) || maxEntries < 0) {
      throw new RangeError(`Cache size must be a non-negative integer: ${maxEntries}`);
    }
    this.#max = maxEntries;
  }

  /** The current write generation: pass it to {@link put} after reading. */
  get generation(): number {
    return this.#gen;
  }

  /** Number of cached values. */
  get size(): number {
    return this.#map.size;
  }

  /** The cached value, or undefined on a miss. */
  get(key: string): V | undefined {
    return this.#map.get(key);
  }

  /** Caches `value` read at generation `gen`, unless a write happened since then. */
  put(key: string, value: V, gen: number): void {
    if (gen !== this.#gen || this.#max === 0) return;
    if (this.#map.size >= this.#max) {
      // drop the oldest insertion (Map keeps insertion order)
      const first = this.#map.keys().next();
      if (!first.done) this.#map.delete(first.value);
    }
    this.#map.set(key, value);
  }

  /** Forgets everything and bumps the generation: called before and after every write. */
  invalidate(): void {
    this.#gen++;
    if (this.#map.size > 0) this.#map.clear();
  }
}

/**
 * `kv` seen through a handle that calls `onWrite` before and after every write: atomic
 * commits (whether they succeed or not), `set`, `delete` and `enqueue`. Reads pass through.
 */
export function watchWrites(kv: Deno.Kv, onWrite: () => void): Deno.Kv {
  const wrapWrite =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) => async (...args: A): Promise<R> => {
      onWrite();
      try {
        return await fn(...args);
      } finally {
        onWrite();
      }
    };
  const set = wrapWrite(kv.set.bind(kv));
  const del = wrapWrite(kv.delete.bind(kv));
  const enqueue = wrapWrite(kv.enqueue.bind(kv));
  const atomic = () => watchAtomic(kv.atomic(), onWrite);
  return new Proxy(kv, {
    get(target, prop) {
      switch (prop) {
        case "atomic":
          return atomic;
        case "set":
          return set;
        case "delete":
          return del;
        case "enqueue":
          return enqueue;
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** An atomic operation whose commit calls `onWrite` before and after; chaining keeps the wrapper. */
function watchAtomic(op: Deno.AtomicOperation, onWrite: () => void): Deno.AtomicOperation {
  const proxy: Deno.AtomicOperation = new Proxy(op, {
    get(target, prop) {
      if (prop === "commit") {
        return async () => {
          onWrite();
          try {
            return await target.commit();
          } finally {
            onWrite();
          }
        };
      }
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        const r = (value as (...a: unknown[]) => unknown).apply(target, args);
        return r === target ? proxy : r;
      };
    },
  });
  return proxy;
}
