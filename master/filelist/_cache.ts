/**
 * Read caches for the filelist, kept correct by watching every write to the KV handle.
 *
 * The master is the only writer of its KV store, and every filelist write goes through the
 * handle that {@link watchWrites} returns, which reports the keys each write touches before and
 * after it commits (whether it succeeds or not). The filelist drops the cached values those keys
 * back and bumps the cache generation; a read that overlapped any write (the generation changed
 * while it was in flight) is not cached. So a cached value is always one that no committed write
 * has replaced. Internal to `master/filelist/`.
 */

/** Default weight (entries) the caches hold before the oldest values are dropped. */
export const DEFAULT_CACHE_ENTRIES = 65_536;

/** A bounded key → value cache with a write generation (see the module doc). */
export class ReadCache<V> {
  #map = new Map<string, { value: V; weight: number }>();
  #weight = 0;
  #gen = 0;
  #max: number;

  /** Creates a cache holding at most `maxWeight` weight of values (0 disables it). */
  constructor(maxWeight: number = DEFAULT_CACHE_ENTRIES) {
    if (!Number.isInteger(maxWeight) || maxWeight < 0) {
      throw new RangeError(`Cache size must be a non-negative integer: ${maxWeight}`);
    }
    this.#max = maxWeight;
  }

  /** The current write generation: read it before a read, pass it to {@link put} after. */
  get generation(): number {
    return this.#gen;
  }

  /** Number of cached values. */
  get size(): number {
    return this.#map.size;
  }

  /** Total weight of the cached values. */
  get weight(): number {
    return this.#weight;
  }

  /** The cached value, or undefined on a miss. */
  get(key: string): V | undefined {
    return this.#map.get(key)?.value;
  }

  /**
   * Caches `value` (of `weight`, default 1) read at generation `gen`, unless a write happened
   * since then or it alone is heavier than the cache. Drops the oldest values to make room.
   */
  put(key: string, value: V, gen: number, weight = 1): void {
    if (gen !== this.#gen || weight > this.#max) return;
    this.delete(key);
    for (const [k, v] of this.#map) {
      if (this.#weight + weight <= this.#max) break;
      this.#map.delete(k);
      this.#weight -= v.weight;
    }
    this.#map.set(key, { value, weight });
    this.#weight += weight;
  }

  /** Forgets `key`. */
  delete(key: string): void {
    const old = this.#map.get(key);
    if (old === undefined) return;
    this.#map.delete(key);
    this.#weight -= old.weight;
  }

  /** Bumps the generation: reads in flight will not be cached. */
  bump(): void {
    this.#gen++;
  }
}

/** Reports the keys a write touches; called before and after the write. */
export type WriteObserver = (keys: readonly Deno.KvKey[]) => void;

/**
 * `kv` seen through a handle that reports every write to `onWrite`, before and after it: atomic
 * commits (the keys of all their mutations, whether the commit succeeds or not), `set`,
 * `delete`, and `enqueue` (its `keysIfUndelivered`). Reads pass through.
 */
export function watchWrites(kv: Deno.Kv, onWrite: WriteObserver): Deno.Kv {
  const around = async <R>(keys: readonly Deno.KvKey[], write: () => Promise<R>): Promise<R> => {
    onWrite(keys);
    try {
      return await write();
    } finally {
      onWrite(keys);
    }
  };
  const overrides: Record<string, unknown> = {
    atomic: () => watchAtomic(kv.atomic(), onWrite),
    set: (key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) =>
      around([key], () => kv.set(key, value, options)),
    delete: (key: Deno.KvKey) => around([key], () => kv.delete(key)),
    enqueue: (value: unknown, options?: Parameters<Deno.Kv["enqueue"]>[1]) =>
      around(options?.keysIfUndelivered ?? [], () => kv.enqueue(value, options)),
  };
  return new Proxy(kv, {
    get(target, prop) {
      if (typeof prop === "string" && Object.hasOwn(overrides, prop)) return overrides[prop];
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** Methods of an atomic operation that write the key in their first argument. */
const KEYED_MUTATIONS = new Set(["set", "delete", "sum", "min", "max"]);

/** An atomic operation that records the keys it mutates and reports them around its commit. */
function watchAtomic(op: Deno.AtomicOperation, onWrite: WriteObserver): Deno.AtomicOperation {
  const keys: Deno.KvKey[] = [];
  const proxy: Deno.AtomicOperation = new Proxy(op, {
    get(target, prop) {
      if (prop === "commit") {
        return async () => {
          onWrite(keys);
          try {
            return await target.commit();
          } finally {
            onWrite(keys);
          }
        };
      }
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        if (typeof prop === "string" && KEYED_MUTATIONS.has(prop)) {
          keys.push(args[0] as Deno.KvKey);
        } else if (prop === "mutate") {
          for (const m of args as Deno.KvMutation[]) keys.push(m.key);
        } else if (prop === "enqueue") {
          const options = args[1] as { keysIfUndelivered?: Deno.KvKey[] } | undefined;
          keys.push(...(options?.keysIfUndelivered ?? []));
        }
        const r = (value as (...a: unknown[]) => unknown).apply(target, args);
        return r === target ? proxy : r;
      };
    },
  });
  return proxy;
}
