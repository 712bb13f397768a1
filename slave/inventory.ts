/**
 * The slave's inventory on the link: when the master asks (`remerge_request`), scans its root
 * (everything, only the folders changed since a time, or some subtrees; see `scanTree`) and
 * streams the result in batches bounded in count and bytes, then `remerge_done`. Scans run one
 * after the other; a master that asks for nothing within REMERGE_REQUEST_WAIT_MS gets everything.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { FrameConn } from "../shared/link.ts";
import {
  type FromSlave,
  type InventoryEntry,
  type ListedDir,
  MAX_REMERGE_BATCH,
  type RemergeRequestMsg,
} from "../shared/protocol.ts";
import { errorText } from "./_errors.ts";
import { type ScanStats, scanTree, SINCE_SLACK_MS } from "./storage.ts";

/** Cap on the JSON size of one remerge batch, well under MAX_FRAME_BYTES even for long paths. */
const REMERGE_BATCH_BYTES = 512 * 1024;
/** Cap on the JSON size of one directory marker (its subdirectory names). */
const DIR_MARKER_BYTES = 256 * 1024;
/** How long the slave waits for the master's `remerge_request` before scanning everything. */
export const REMERGE_REQUEST_WAIT_MS = 10_000;

/** Streams the inventory of `root` over one link session. */
export class InventoryStream {
  #root: string;
  #link: FrameConn<FromSlave>;
  #ended: AbortSignal;
  #track: (task: Promise<void>) => void;
  #log = getLogger(["drftpd", "slave"]);
  /** Runs the remerge scans the master asked for, one after the other. */
  #scans: Promise<void> = Promise.resolve();
  #requestTimer: ReturnType<typeof setTimeout> | undefined;
  /** A full scan started without being asked: it answers the master's first request too. */
  #unasked = false;

  /**
   * Scans `root` and writes to `link`; `ended` (the session's end) stops a scan; `track` keeps
   * each scan so the session can wait for it on close.
   */
  constructor(
    root: string,
    link: FrameConn<FromSlave>,
    options: { ended: AbortSignal; track: (task: Promise<void>) => void },
  ) {
    this.#root = root;
    this.#link = link;
    this.#ended = options.ended;
    this.#track = options.track;
  }

  /** After the welcome: the master says what to scan; an old or stuck master gets everything. */
  armFallback(): void {
    this.#requestTimer = setTimeout(() => {
      this.#requestTimer = undefined;
      this.#log.warn("No remerge request from the master after {seconds} s; sending everything", {
        seconds: REMERGE_REQUEST_WAIT_MS / 1000,
      });
      this.#unasked = true;
      this.#queue(0, undefined);
    }, REMERGE_REQUEST_WAIT_MS);
  }

  /** The master asked for an inventory. */
  requested(msg: RemergeRequestMsg): void {
    clearTimeout(this.#requestTimer);
    this.#requestTimer = undefined;
    if (this.#unasked && msg.paths === undefined) {
      this.#unasked = false; // the full scan already running answers it
      return;
    }
    this.#queue(msg.since, msg.paths);
  }

  /** Stops the fallback timer (the session ended). */
  close(): void {
    clearTimeout(this.#requestTimer);
    this.#requestTimer = undefined;
  }

  /** Runs a remerge scan after the ones already asked for. */
  #queue(since: number, paths: readonly string[] | undefined): void {
    const run = this.#scans.then(() => this.#remerge(since, paths));
    this.#scans = run;
    this.#track(run);
  }

  /**
   * Scans (everything, the directories changed since `since`, or the subtrees `paths`) and
   * streams the result in batches bounded in count and bytes, then `remerge_done`.
   */
  async #remerge(since: number, paths: readonly string[] | undefined): Promise<void> {
    if (this.#ended.aborted) return;
    const encoder = new TextEncoder();
    const started = performance.now();
    const scannedAt = Date.now();
    if (since > scannedAt + SINCE_SLACK_MS) {
      // `since` is when an earlier scan of ours started: our clock went back since then.
      this.#log.warn(
        "The master's last remerge of this slave started at {then}, after our clock's now " +
          "({now}): did the clock go back? Sending everything",
        { then: new Date(since).toISOString(), now: new Date(scannedAt).toISOString() },
      );
      since = 0;
    }
    const size = (v: unknown) => encoder.encode(JSON.stringify(v)).length + 1;
    let entries: InventoryEntry[] = [];
    let dirs: ListedDir[] = [];
    let batchBytes = 0;
    let files = 0;
    const flush = async () => {
      if (entries.length === 0 && dirs.length === 0) return;
      await this.#link.write(
        dirs.length ? { type: "remerge", entries, dirs } : { type: "remerge", entries },
      );
      entries = [];
      dirs = [];
      batchBytes = 0;
    };
    const stats: ScanStats = { visited: 0, read: 0, listed: 0 };
    try {
      for await (
        const item of scanTree(this.#root, { since, paths: paths ?? ["/"], stats })
      ) {
        if (this.#ended.aborted) return;
        if (item.kind === "file") {
          const n = size(item.entry);
          if (entries.length >= MAX_REMERGE_BATCH || batchBytes + n > REMERGE_BATCH_BYTES) {
            await flush();
          }
          entries.push(item.entry);
          batchBytes += n;
          files++;
          continue;
        }
        for (const marker of dirMarkers(item.path, item.subdirs, size)) {
          const n = size(marker);
          if (dirs.length >= MAX_REMERGE_BATCH || batchBytes + n > REMERGE_BATCH_BYTES) {
            await flush();
          }
          dirs.push(marker);
          batchBytes += n;
        }
      }
      await flush();
      await this.#link.write({ type: "remerge_done", files, scannedAt });
      this.#log.info(
        "Sent the inventory ({what}): {files} files from {listed} listed folders " +
          "({visited} visited, {read} read) in {ms} ms",
        {
          what: paths
            ? `${paths.length} subtree${paths.length === 1 ? "" : "s"}`
            : since > 0
            ? `changed since ${new Date(since).toISOString()}`
            : "full",
          files,
          ...stats,
          ms: Math.round(performance.now() - started),
        },
      );
    } catch (e) {
      if (!this.#link.closed) {
        this.#log.error("Remerge failed, dropping the link: {error}", { error: errorText(e) });
        this.#link.close();
      }
    }
  }
}

/**
 * The markers of one listed directory: its subdirectory names split into pieces of at most
 * MAX_REMERGE_BATCH names and DIR_MARKER_BYTES; only the last piece is `complete`.
 */
export function dirMarkers(
  path: string,
  subdirs: readonly string[],
  size: (v: unknown) => number = (v) => JSON.stringify(v).length * 3,
): ListedDir[] {
  const out: ListedDir[] = [];
  let piece: string[] = [];
  let bytes = size({ path, subdirs: [], complete: false });
  for (const name of subdirs) {
    const n = size(name);
    if (piece.length > 0 && (piece.length >= MAX_REMERGE_BATCH || bytes + n > DIR_MARKER_BYTES)) {
      out.push({ path, subdirs: piece, complete: false });
      piece = [];
      bytes = size({ path, subdirs: [], complete: false });
    }
    piece.push(name);
    bytes += n;
  }
  out.push({ path, subdirs: piece, complete: true });
  return out;
}
