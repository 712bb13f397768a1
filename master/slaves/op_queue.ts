/**
 * Deletes and renames a slave missed while it was offline.
 *
 * They are kept in KV per slave, in order. When the slave comes back its inventory is rewritten
 * through the queue (a deleted file is not re-added, a renamed one appears at its new path), and
 * after the remerge the operations are replayed on the slave's disk, then forgotten.
 */
import { isWithin } from "../../shared/paths.ts";

/** One missed operation. */
export type QueuedOp =
  | { op: "delete"; path: string }
  | { op: "rename"; from: string; to: string };

/**
 * A change of the slave's namespace decided by the master: queued ones, and those made while a
 * remerge of the slave runs (rmdir included: it removes a whole tree from the slave's disk).
 */
export type NamespaceOp = QueuedOp | { op: "rmdir"; path: string };

/**
 * Applies operations to one inventory path; returns the path now, or null if deleted (by a
 * delete of it, or an rmdir of a folder above it).
 */
export function rewritePath(path: string, ops: readonly NamespaceOp[]): string | null {
  let p = path;
  for (const o of ops) {
    if (o.op === "delete") {
      if (p === o.path) return null;
    } else if (o.op === "rmdir") {
      if (isWithin(p, o.path)) return null;
    } else if (isWithin(p, o.from)) {
      p = o.to + p.slice(o.from.length);
    }
  }
  return p;
}

/**
 * Whether a rename in `ops` moved something at or below `path` (source or target): a partial
 * remerge must not take the slave off such a path because of what a listing of its disk shows,
 * since the disk catches up only when the queue is replayed.
 */
export function touchedByRename(path: string, ops: readonly NamespaceOp[]): boolean {
  return ops.some((o) => o.op === "rename" && (isWithin(path, o.from) || isWithin(path, o.to)));
}

/** The per-slave queue in KV: `["queue", slave, seq]`. */
export class OpQueue {
  #kv: Deno.Kv;
  #last = 0;

  /** Uses `kv`. */
  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  /** Appends an operation for `slave`. */
  async add(slave: string, op: QueuedOp): Promise<void> {
    const seq = Math.max(Date.now() * 1000, this.#last + 1);
    this.#last = seq;
    await this.#kv.set(["queue", slave, seq], op);
  }

  /** All queued operations of `slave`, oldest first, with their keys. */
  async list(slave: string): Promise<{ key: Deno.KvKey; op: QueuedOp }[]> {
    const out: { key: Deno.KvKey; op: QueuedOp }[] = [];
    for await (const e of this.#kv.list<QueuedOp>({ prefix: ["queue", slave] })) {
      out.push({ key: e.key, op: e.value });
    }
    return out;
  }

  /** Forgets one operation once it was applied. */
  async done(key: Deno.KvKey): Promise<void> {
    await this.#kv.delete(key);
  }
}
