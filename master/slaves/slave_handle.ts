/**
 * The master's side of one slave connection: the write path (typed requests and events), the
 * read loop (validates every frame, answers the heartbeat, routes replies, errors and progress),
 * the pending requests, the running transfers' progress, and the counters slave selection
 * needs. The remerge frames go to the `SlaveLinkEvents` the link server passes to `serve()`
 * (`remerge_run.ts`); accepting and the handshake stay in `link_server.ts`.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { FrameConn } from "../../shared/link.ts";
import {
  type ErrorCode,
  type ErrorMsg,
  type FromMaster,
  HEARTBEAT_MS,
  parseFromSlave,
  parseReply,
  type RemergeDoneMsg,
  type RemergeMsg,
  type ReplyData,
  type RequestBody,
  type RequestKind,
  type RequestMsg,
} from "../../shared/protocol.ts";
import type { NamespaceOp } from "./op_queue.ts";
import { type ActiveTransfer, RecentThroughput, SpeedMeter } from "./progress.ts";
import { PICK_WINDOW_MS } from "./selection.ts";

const log = getLogger(["drftpd", "master", "link"]);

/** A slave answered a request with an error. */
export class SlaveReplyError extends Error {
  /** The slave's reason code. */
  readonly code: ErrorCode;
  /** What is on disk after a failed receive, when the slave said. */
  readonly partial: ErrorMsg["partial"];
  /** Creates the error from an error frame. */
  constructor(slave: string, msg: ErrorMsg) {
    super(`Slave "${slave}": ${msg.message}`);
    this.name = "SlaveReplyError";
    this.code = msg.code;
    this.partial = msg.partial;
  }
}

/** The slave's link went away while a request was outstanding. */
export class SlaveGoneError extends Error {
  /** Creates the error. */
  constructor(slave: string) {
    super(`Slave "${slave}" went offline`);
    this.name = "SlaveGoneError";
  }
}

/**
 * A slave has sent nothing for a while (`[slaves] unresponsive_after`, e.g. SIGSTOPped, or its
 * host is swapping): a short request to it (PASV's `listen`, a delete) failed rather than wait.
 */
export class SlaveUnresponsiveError extends Error {
  /** Creates the error. */
  constructor(slave: string, why: string) {
    super(`Slave "${slave}" is not responding: ${why}`);
    this.name = "SlaveUnresponsiveError";
  }
}

/** How long a silent slave is still waited for (`[slaves] unresponsive_after`, `drop_after`). */
export interface SilenceLimits {
  /** Silence after which the slave is passed over and its short requests fail, ms. */
  unresponsiveMs: number;
  /** Silence after which the link is dropped (its transfers end with 426), ms. */
  dropMs: number;
}

/** The defaults of `[slaves] unresponsive_after` and `drop_after`. */
export const DEFAULT_SILENCE: SilenceLimits = { unresponsiveMs: 3_000, dropMs: 10_000 };

/** A `listen` (PASV) not answered within this fails even when the slave still sends pings. */
export const LISTEN_DEADLINE_MS = 5_000;

/** What the read loop hands on besides replies: the remerge stream (see `remerge_run.ts`). */
export interface SlaveLinkEvents {
  /** Runs once the heartbeat is up, before the first frame is read (asks for the inventory). */
  start(): Promise<void>;
  /** One inventory batch; awaited, which applies back-pressure to the slave. */
  remerge(msg: RemergeMsg): Promise<void>;
  /** An inventory is complete. */
  remergeDone(msg: RemergeDoneMsg): Promise<void>;
}

interface Pending {
  /** Transfers wait for the slave until it is dropped; every other request fails sooner. */
  long: boolean;
  /** Checks `data` against the request's reply shape and resolves; throws when it does not fit. */
  settle(data: unknown): void;
  reject(e: Error): void;
}

interface Running {
  req: RequestMsg<"transfer">;
  started: number;
  meter: SpeedMeter;
}

/** Lifecycle of a connected slave. */
export type SlaveState = "remerging" | "online" | "gone";

/** One connected slave. */
export class SlaveHandle {
  /** The slave's configured name. */
  readonly name: string;
  /** Remote address of the link. */
  readonly address: string;
  /** Local (master-side) address of the link; the slave sees our data connections come from it. */
  readonly localAddress: string;
  /** When the link was established, ms. */
  readonly since = Date.now();
  /** Current lifecycle state. */
  state: SlaveState = "remerging";
  /** The slave said it is stopping (`leaving`): no new transfers; its going is no failure. */
  leaving = false;
  /** Free and total bytes, as last reported. */
  disk = { free: 0, total: 0 };
  /** Transfers currently running through this slave (client transfers and copies). */
  activeTransfers = 0;
  /** Of those, copies between slaves this slave sends or receives (`copy.ts`). */
  copies = 0;
  /** When this slave was last picked for a transfer (for round-robin among equals). */
  lastPicked = 0;
  /** When it was picked over the last PICK_WINDOW_MS (at most 1000 kept). */
  #picks: number[] = [];
  /** When a frame was last received, ms. */
  lastHeard = Date.now();

  #limits: SilenceLimits;
  /** When the read loop began waiting for the next frame (null while it handles one). */
  #waitingSince: number | null = Date.now();
  /** The slave has been silent longer than `unresponsiveMs` (cleared by its next frame). */
  #unresponsive = false;
  /** Aborted when the link is gone. */
  #goneSignal = new AbortController();

  /** Namespace changes decided while a remerge of this slave runs (null when none runs). */
  #changes: NamespaceOp[] | null = null;
  /** Starts a full remerge of this online slave (set by the link while it is up). */
  #remergeStarter: ((why?: string) => Promise<void>) | null = null;

  #link: FrameConn<FromMaster>;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #running = new Map<string, Running>();
  #progress = new Map<string, (bytes: number) => void>();
  /** Bytes moved by all transfers of this slave over the last 30 s (for slave selection). */
  #recent = new RecentThroughput();
  #gone: Promise<void>;
  #markGone!: () => void;

  /** Wraps an authenticated link; `limits` default to {@link DEFAULT_SILENCE}. */
  constructor(
    name: string,
    link: FrameConn<FromMaster>,
    address: string,
    localAddress: string,
    limits: SilenceLimits = DEFAULT_SILENCE,
  ) {
    this.name = name;
    this.#limits = limits;
    this.#link = link;
    this.address = address;
    this.localAddress = localAddress;
    this.#gone = new Promise((r) => (this.#markGone = r));
  }

  /** Resolves when the link is gone. */
  get gone(): Promise<void> {
    return this.#gone;
  }

  /** Aborted when the link is gone (for data connections that must end with it). */
  get signal(): AbortSignal {
    return this.#goneSignal.signal;
  }

  /** Whether transfers may use this slave. */
  get available(): boolean {
    return this.state === "online" && !this.leaving && !this.#unresponsive;
  }

  /** Whether the slave has sent nothing for longer than `[slaves] unresponsive_after`. */
  get unresponsive(): boolean {
    return this.#unresponsive;
  }

  /**
   * How long the slave has been silent, ms: the time the read loop has been waiting for a frame.
   * While the master itself is busy with a frame (a remerge batch), the slave is not silent.
   */
  get silentMs(): number {
    return this.#waitingSince === null ? 0 : Date.now() - this.#waitingSince;
  }

  /**
   * Sends request `kind` and resolves with its reply's data, checked against the reply shape
   * `REQUESTS[kind]` declares (a reply that does not fit drops the link). Rejects with
   * SlaveReplyError (the slave's error frame) or SlaveGoneError; a request other than a transfer
   * rejects with SlaveUnresponsiveError when the slave is, or becomes, silent too long (and a
   * `listen` after LISTEN_DEADLINE_MS), so a stopped slave never holds up PASV or a DELE.
   */
  request<K extends RequestKind>(kind: K, body: RequestBody<K>): Promise<ReplyData<K>> {
    if (this.state === "gone") return Promise.reject(new SlaveGoneError(this.name));
    const long = kind === "transfer";
    if (!long && this.#unresponsive) {
      return Promise.reject(new SlaveUnresponsiveError(this.name, this.#silence()));
    }
    const id = this.#nextId++;
    // `body` fits kind `K` (the signature says so); TypeScript cannot follow that into the union.
    const frame = { ...body, type: kind, id } as RequestMsg;
    const running = frame.type === "transfer" && frame.text === undefined ? frame : null;
    const { promise, resolve, reject } = Promise.withResolvers<ReplyData<K>>();
    const settle = (data: unknown) => {
      try {
        resolve(parseReply(kind, data));
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
        throw e; // the read loop drops the link
      }
    };
    this.#pending.set(id, { long, settle, reject });
    if (kind === "listen") {
      const timer = setTimeout(() => {
        if (this.#answer(id)) {
          reject(
            new SlaveUnresponsiveError(this.name, `no answer to PASV in ${LISTEN_DEADLINE_MS} ms`),
          );
        }
      }, LISTEN_DEADLINE_MS);
      promise.finally(() => clearTimeout(timer)).catch(() => {});
    }
    if (running) {
      const now = performance.now();
      this.#running.set(running.xfer, {
        req: running,
        started: Date.now(),
        meter: new SpeedMeter(now),
      });
      const end = (bytes?: unknown) => {
        // Bytes moved after the last progress event (a short transfer may send none).
        const meter = this.#running.get(running.xfer)?.meter;
        if (typeof bytes === "number" && meter) {
          this.#recent.add(performance.now(), bytes - meter.bytes);
        }
        this.#running.delete(running.xfer);
      };
      promise.then((r) => end((r as Partial<ReplyData<"transfer">>).bytes), () => end());
    }
    this.#link.write(frame).catch(() => {
      this.#pending.delete(id);
      reject(new SlaveGoneError(this.name));
    });
    return promise;
  }

  /** Sends a frame that needs no answer (heartbeat, remerge requests). */
  send(msg: Exclude<FromMaster, RequestMsg>): Promise<void> {
    return this.#link.write(msg);
  }

  /** Subscribes to progress events of transfer `xfer`; returns the unsubscribe function. */
  onProgress(xfer: string, fn: (bytes: number) => void): () => void {
    this.#progress.set(xfer, fn);
    return () => this.#progress.delete(xfer);
  }

  /** The transfers running on this slave now, with their bytes so far and current speed. */
  transfers(): ActiveTransfer[] {
    const now = performance.now();
    return [...this.#running.values()].map(({ req, started, meter }) => ({
      slave: this.name,
      xfer: req.xfer,
      direction: req.dir === "receive" ? "upload" : "download",
      path: req.path,
      bytes: meter.bytes,
      speed: meter.speed(now),
      started,
    }));
  }

  /** Records that selection picked this slave now. */
  picked(now = performance.now()): void {
    this.lastPicked = now;
    this.#picks.push(now);
    if (this.#picks.length > 1000) this.#picks.shift();
  }

  /** How often selection picked this slave over the last PICK_WINDOW_MS. */
  recentPicks(now = performance.now()): number {
    while (this.#picks.length > 0 && this.#picks[0]! <= now - PICK_WINDOW_MS) this.#picks.shift();
    return this.#picks.length;
  }

  /** Bytes/s this slave moved over the last 30 s, all its transfers together. */
  get throughput(): number {
    return this.#recent.rate(performance.now());
  }

  /**
   * Runs the connection until the link ends: the heartbeat (a ping every HEARTBEAT_MS, and the
   * silence checks of {@link #checkSilence}) and the read loop. Any frame that does not validate
   * ends the link. Closes the handle when it returns.
   */
  async serve(events: SlaveLinkEvents): Promise<void> {
    const heartbeat = setInterval(() => {
      if (!this.#checkSilence()) return;
      this.send({ type: "ping", t: Date.now() }).catch(() => this.close());
    }, HEARTBEAT_MS);
    try {
      await events.start();
      for (;;) {
        this.#waitingSince = Date.now();
        const raw = await this.#link.read();
        this.#waitingSince = null;
        if (raw === null) return;
        this.lastHeard = Date.now();
        if (this.#unresponsive) {
          this.#unresponsive = false;
          log.warn("Slave {name} is responding again", { name: this.name });
        }
        const msg = parseFromSlave(raw);
        switch (msg.type) {
          case "reply":
            this.#answer(msg.id)?.settle(msg.data);
            break;
          case "error":
            this.#answer(msg.id)?.reject(new SlaveReplyError(this.name, msg));
            break;
          case "ping":
            break;
          case "disk":
            this.disk = { free: msg.free, total: msg.total };
            break;
          case "progress": {
            const meter = this.#running.get(msg.xfer)?.meter;
            if (meter) {
              const now = performance.now();
              this.#recent.add(now, msg.bytes - meter.bytes);
              meter.add(now, msg.bytes);
            }
            this.#progress.get(msg.xfer)?.(msg.bytes);
            break;
          }
          case "remerge":
            await events.remerge(msg);
            break;
          case "remerge_done":
            await events.remergeDone(msg);
            break;
          case "leaving":
            this.leaving = true;
            log.info("Slave {name} is leaving ({reason})", { name: this.name, reason: msg.reason });
            break;
          case "auth":
            throw new Error("auth after handshake");
        }
      }
    } catch (e) {
      // A link we closed ourselves (shutdown, heartbeat) ends the loop without an error.
      if (this.state !== "gone" && !this.#link.closed) {
        log.error("Dropping slave {name}: {error}", { name: this.name, error: String(e) });
      }
    } finally {
      clearInterval(heartbeat);
      this.#remergeStarter = null;
      this.#changes = null;
      this.close();
    }
  }

  /**
   * A slave silent for `unresponsiveMs` is passed over for new transfers and its pending short
   * requests fail (so PASV answers from another slave, a DELE is queued for it); one silent for
   * `dropMs` is dropped, which fails its transfers (426) and aborts {@link signal}. Returns
   * false when the link was dropped.
   */
  #checkSilence(): boolean {
    const silent = this.silentMs;
    if (silent > this.#limits.dropMs) {
      log.error("Slave {name} silent for {ms} ms; dropping it", { name: this.name, ms: silent });
      this.close();
      return false;
    }
    if (silent > this.#limits.unresponsiveMs && !this.#unresponsive) {
      this.#unresponsive = true;
      log.warn("Slave {name} is not responding (silent for {ms} ms); passing it over", {
        name: this.name,
        ms: silent,
      });
      const why = this.#silence();
      for (const [id, p] of this.#pending) {
        if (p.long) continue;
        this.#pending.delete(id);
        p.reject(new SlaveUnresponsiveError(this.name, why));
      }
    }
    return true;
  }

  #silence(): string {
    return `nothing heard for ${(this.silentMs / 1000).toFixed(1)} s`;
  }

  /** Takes the pending request `id` (an answer to an unknown id is ignored). */
  #answer(id: number): Pending | undefined {
    const p = this.#pending.get(id);
    this.#pending.delete(id);
    return p;
  }

  /**
   * While a remerge runs, the master's deletes, renames and rmdirs are collected in `ops` (the
   * caller's live list), so a batch the slave scanned before such a change cannot bring the old
   * path back. `null` stops collecting.
   */
  trackChanges(ops: NamespaceOp[] | null): void {
    this.#changes = ops;
  }

  /** Whether a remerge of this slave is running (on connect, or asked for while online). */
  get remerging(): boolean {
    return this.#changes !== null;
  }

  /** Records a namespace change before the master makes it (see {@link trackChanges}). */
  noteChange(op: NamespaceOp): void {
    this.#changes?.push(op);
  }

  /** Lets the link start full remerges on request (null when the link cannot). */
  setRemergeStarter(start: ((why?: string) => Promise<void>) | null): void {
    this.#remergeStarter = start;
  }

  /**
   * Starts a full remerge of this online slave, which keeps serving meanwhile. Throws when the
   * slave is not online or a remerge already runs. `why` names it in the logs (default
   * "asked for").
   */
  async startFullRemerge(why?: string): Promise<void> {
    if (this.state !== "online" || this.#remergeStarter === null) {
      throw new Error(`Slave ${this.name} is not online`);
    }
    if (this.remerging) throw new Error(`A remerge of ${this.name} is already running`);
    await this.#remergeStarter(why);
  }

  /** Marks the slave gone: fails every outstanding request and closes the link. Idempotent. */
  close(): void {
    if (this.state === "gone") return;
    this.state = "gone";
    this.#link.close();
    for (const p of this.#pending.values()) p.reject(new SlaveGoneError(this.name));
    this.#pending.clear();
    this.#running.clear();
    this.#progress.clear();
    this.#goneSignal.abort(new SlaveGoneError(this.name));
    this.#markGone();
  }
}
