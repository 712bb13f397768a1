/**
 * The remerge of one connected slave, driven by the master: asks for the inventory
 * (`remerge_request`), feeds the batches to the filelist, asks for subtree rescans after a
 * partial pass, finishes, marks the slave online and replays the operations it missed.
 *
 * With `partialRemerge` and a completed remerge on record, it asks only for the directories
 * changed since that remerge's scan started (slave clock); after that pass it asks for the
 * subtrees the filelist knows nothing of this slave under (see `Remerge.takeRescans`), then
 * finishes and marks the slave online. Without a record (new slave, fresh KV) or with
 * `partial_remerge = false` it asks for everything.
 *
 * What a partial remerge trades for speed (DrFTPD's `partial.remerge` has the same limits):
 * - a file rewritten in place (same name, new size) in a directory whose own mtime and ctime did
 *   not change since the last remerge keeps its recorded size until a full remerge;
 * - directory timestamps must not lag the slave's clock by more than 2 s (a network file system
 *   whose server clock is behind): such changes are missed the same way; a slave clock now
 *   more than 2 s behind `since` is noticed by the slave, which then sends everything;
 * - a file deleted from a directory that was renamed in the filelist while the slave was offline
 *   stays recorded on it (the rename targets are never taken off by a listing).
 * Directories the slave did not list keep their holders untouched: nothing else is ever removed
 * on a guess.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { MAX_RESCAN_PATHS, type RemergeDoneMsg, type RemergeMsg } from "../../shared/protocol.ts";
import type { Collision, Filelist, Remerge } from "../filelist/types.ts";
import { collisionPath } from "../../shared/paths.ts";
import {
  type NamespaceOp,
  type OpQueue,
  type QueuedOp,
  rewritePath,
  touchedByRename,
} from "./op_queue.ts";
import { type SlaveHandle, type SlaveLinkEvents, SlaveReplyError } from "./slave_handle.ts";
import type { WorkHandle, WorkProgress } from "../work_progress.ts";

const log = getLogger(["drftpd", "master", "link"]);

/** What a slave's remerge needs. */
export interface RemergeOptions {
  filelist: Filelist;
  /** Operations offline slaves missed. */
  queue: OpQueue;
  /** Marks the slave online once its first remerge is complete (`SlaveRegistry.markOnline`). */
  markOnline(slave: SlaveHandle): void;
  /** Ask only for what changed since the last completed remerge. Default true. */
  partialRemerge?: boolean;
  /** Where running remerges report progress (logged every few seconds, on the status page). */
  work: WorkProgress;
}

/** One remerge of a slave in progress. */
interface RemergeRun {
  remerge: Remerge;
  /** For the logs: "full", "partial (changed since …)", "full (asked for)". */
  mode: string;
  /** The remerge every (re)connect runs (else one asked for while the slave is online). */
  onConnect: boolean;
  /** Live list: queued changes the slave missed, then every change made while this runs. */
  ops: NamespaceOp[];
  started: number;
  /** The slave-clock start of the first pass: the next `since`. */
  scannedAt: number | null;
  rescans: number;
  seen: number;
  /** Files the slave holds with another size than their other holders (set aside at the end). */
  collisions: Collision[];
  /** Files, bytes, rate and ETA, logged every few seconds and shown on the status page. */
  progress: WorkHandle;
}

/** The remerge side of one slave's link (the `SlaveLinkEvents` its read loop calls). */
export class SlaveRemerge implements SlaveLinkEvents {
  #slave: SlaveHandle;
  #options: RemergeOptions;
  #run: RemergeRun | null = null;

  /** Drives the remerges of `slave`. */
  constructor(slave: SlaveHandle, options: RemergeOptions) {
    this.#slave = slave;
    this.#options = options;
    slave.gone.then(() => this.#run?.progress.end());
  }

  /** Asks for the inventory of the freshly connected slave; lets SITE REMERGE ask again later. */
  async start(): Promise<void> {
    const { filelist, queue, partialRemerge } = this.#options;
    const slave = this.#slave;
    const queued = await queue.list(slave.name);
    const since = partialRemerge === false ? 0 : await filelist.remergeSince(slave.name);
    this.#run = await this.#begin({ since, onConnect: true, ops: queued.map((q) => q.op) });
    slave.setRemergeStarter(async (why) => {
      if (this.#run !== null) throw new Error(`A remerge of ${slave.name} is already running`);
      this.#run = await this.#begin({ since: 0, onConnect: false, ops: [], why });
    });
  }

  /** Feeds one batch to the filelist, rewritten through the changes made since it was scanned. */
  async remerge(msg: RemergeMsg): Promise<void> {
    const run = this.#run;
    if (!run) throw new Error("remerge batch while no remerge runs");
    const ops = run.ops;
    await run.remerge.add(
      ops.length === 0 ? msg.entries : msg.entries.flatMap((e) => {
        const path = rewritePath(e.path, ops);
        return path === null ? [] : [{ ...e, path }];
      }),
      msg.dirs ?? [],
    );
    run.collisions.push(...run.remerge.takeCollisions());
    run.seen += msg.entries.length;
    run.progress.add(msg.entries.length, msg.entries.reduce((n, e) => n + e.size, 0));
  }

  /** Asks for rescans after a partial pass, or finishes the remerge. */
  async remergeDone(msg: RemergeDoneMsg): Promise<void> {
    const run = this.#run;
    if (!run) throw new Error("remerge_done while no remerge runs");
    const slave = this.#slave;
    run.scannedAt ??= msg.scannedAt;
    const paths = run.remerge.partial ? run.remerge.takeRescans(MAX_RESCAN_PATHS) : [];
    if (paths.length > 0) {
      // New or moved-in directories: have their whole subtrees listed before finishing.
      run.rescans += paths.length;
      log.info("Remerge of {name}: asking for {n} subtrees the filelist does not know", {
        name: slave.name,
        n: paths.length,
      });
      await slave.send({ type: "remerge_request", since: 0, paths });
      return;
    }
    const stats = await run.remerge.finish(run.scannedAt ?? msg.scannedAt);
    run.progress.end();
    this.#run = null;
    slave.trackChanges(null);
    const online = () => {
      if (!run.onConnect || slave.state === "gone") return;
      this.#options.markOnline(slave);
      // reread: an operation may have been queued for this slave while it remerged
      this.#options.queue.list(slave.name)
        .then((q) => this.#replay(q))
        .catch((e) =>
          log.warn("Replaying missed operations on {name} failed: {error}", {
            name: slave.name,
            error: String(e),
          })
        );
    };
    if (run.collisions.length === 0) online();
    else {
      // Colliding copies are set aside before the slave is online, so no copy replaces them.
      // Not awaited: the read loop awaits this, and the slave's answers come through it.
      this.#setAside(run.collisions).catch((e) =>
        log.warn("Setting collisions aside on {name} failed: {error}", {
          name: slave.name,
          error: String(e),
        })
      ).finally(online);
    }
    log.info(
      "Slave {name} {state}: {mode} remerge of {files} files in {ms} ms (added {added}, removed {removed}, dropped {dropped}, resized {resized}, conflicts {conflicts}, listed folders {listed}, rescanned subtrees {rescans}, pruned folders {pruned})",
      {
        name: slave.name,
        state: run.onConnect ? "online" : "remerged",
        mode: run.mode,
        files: run.seen,
        ms: Math.round(performance.now() - run.started),
        rescans: run.rescans,
        ...stats,
      },
    );
  }

  /**
   * Begins a remerge and asks the slave for its inventory. From this call on, the master's
   * namespace changes are collected in `ops` (see `SlaveHandle.trackChanges`): batches are
   * rewritten through them, and paths a rename touched are never taken off the slave.
   */
  async #begin(
    run: { since: number; onConnect: boolean; ops: NamespaceOp[]; why?: string | undefined },
  ): Promise<RemergeRun> {
    const { since, onConnect, ops } = run;
    const slave = this.#slave;
    slave.trackChanges(ops);
    const remerge = await this.#options.filelist.beginRemerge(slave.name, {
      partial: since > 0,
      protect: (path: string) => touchedByRename(path, ops),
    });
    const mode = since > 0
      ? `partial (changed since ${new Date(since).toISOString()})`
      : onConnect
      ? "full"
      : `full (${run.why ?? "asked for"})`;
    await slave.send({ type: "remerge_request", since });
    log.info("Remerge of {name}: asked for a {mode} inventory", { name: slave.name, mode });
    return {
      remerge,
      mode,
      onConnect,
      ops,
      started: performance.now(),
      scannedAt: null,
      rescans: 0,
      seen: 0,
      collisions: [],
      progress: this.#progress(since),
    };
  }

  /**
   * Progress of a remerge; for a full one the expected file count is what the slave held before
   * (counted in the background, so the remerge does not wait for it).
   */
  #progress(since: number): WorkHandle {
    const name = this.#slave.name;
    const progress = this.#options.work.start("remerge", name);
    if (since === 0) {
      (async () => {
        let n = 0;
        for await (const _ of this.#options.filelist.filesHeldBy(name)) n++;
        progress.expect(n);
      })().catch(() => {});
    }
    return progress;
  }

  /**
   * Renames the slave's colliding copies aside (`shared/paths.ts#collisionPath`: never
   * inventoried, so never listed or served) and logs each once at WARN; the filelist keeps the
   * other holders' entry. A copy the slave cannot rename is logged and found again by the next
   * remerge.
   */
  async #setAside(collisions: readonly Collision[]): Promise<void> {
    const slave = this.#slave;
    for (const c of collisions) {
      const aside = collisionPath(c.path, Date.now());
      try {
        await slave.request("rename", { from: c.path, to: aside });
        log.warn(
          "Collision on {name}: {path} is {size} bytes there but {recorded} bytes on {holders}; its copy is kept aside as {aside} and not served",
          {
            name: slave.name,
            path: c.path,
            size: c.size,
            recorded: c.recorded,
            holders: c.holders.join(", "),
            aside,
          },
        );
      } catch (e) {
        if (!(e instanceof SlaveReplyError)) throw e;
        log.warn(
          "Collision on {name}: {path} is {size} bytes there but {recorded} bytes on {holders}; setting it aside failed: {error}",
          {
            name: slave.name,
            path: c.path,
            size: c.size,
            recorded: c.recorded,
            holders: c.holders.join(", "),
            error: e.message,
          },
        );
      }
    }
  }

  /**
   * Applies the deletes and renames the slave missed while offline, oldest first. An operation
   * the slave answers with an error (the target exists, the name is too long for its file
   * system…) will never succeed: it is dropped with an error log, what follows still runs, and a
   * full remerge then makes the filelist match the slave's disk. Only a lost link stops the
   * replay (the rest stays queued for the next connect).
   */
  async #replay(queued: readonly { key: Deno.KvKey; op: QueuedOp }[]): Promise<void> {
    const slave = this.#slave;
    let dropped = 0;
    for (const { key, op } of queued) {
      try {
        if (op.op === "delete") await slave.request("delete", { path: op.path });
        else await slave.request("rename", { from: op.from, to: op.to });
      } catch (e) {
        if (!(e instanceof SlaveReplyError)) throw e;
        if (e.code !== "not_found" && e.code !== "not_a_file") {
          dropped++;
          log.error("Dropped a missed {op} {what} on {name}: the slave refused it: {error}", {
            op: op.op,
            what: op.op === "delete" ? op.path : `${op.from} → ${op.to}`,
            name: slave.name,
            error: e.message,
          });
        }
      }
      await this.#options.queue.done(key);
    }
    if (queued.length > 0) {
      log.info("Replayed {n} missed operations on {name}", { n: queued.length, name: slave.name });
    }
    if (dropped > 0) {
      await slave.startFullRemerge("scheduled").catch((e) =>
        log.error("Could not schedule a full remerge of {name}: {error}", {
          name: slave.name,
          error: String(e),
        })
      );
    }
  }
}
