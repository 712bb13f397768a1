/**
 * The master's handle on one connected slave: request/reply correlation, pushed events,
 * and the counters slave selection needs.
 */
import type { FrameConn } from "../../shared/link.ts";
import type { ErrorCode, ErrorMsg, ProgressMsg, SlaveRequest } from "../../shared/protocol.ts";
import type { NamespaceOp } from "./op_queue.ts";

/** Distributes `Omit` over a union so each request variant keeps its own fields. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A request as callers write it: the handle assigns the id. */
export type RequestBody = DistributiveOmit<SlaveRequest, "id">;

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

interface Pending {
  resolve(data: Record<string, unknown>): void;
  reject(e: Error): void;
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
  /** Free and total bytes, as last reported. */
  disk = { free: 0, total: 0 };
  /** Transfers currently running through this slave. */
  activeTransfers = 0;
  /** When this slave was last picked for a transfer (for round-robin among equals). */
  lastPicked = 0;
  /** When a frame was last received, ms. */
  lastHeard = Date.now();

  /** Namespace changes decided while a remerge of this slave runs (null when none runs). */
  #changes: NamespaceOp[] | null = null;
  /** Starts a full remerge of this online slave (set by the link while it is up). */
  #remergeStarter: (() => Promise<void>) | null = null;

  #link: FrameConn;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #progress = new Map<string, (bytes: number) => void>();
  #gone: Promise<void>;
  #markGone!: () => void;

  /** Wraps an authenticated link. */
  constructor(name: string, link: FrameConn, address: string, localAddress: string) {
    this.name = name;
    this.#link = link;
    this.address = address;
    this.localAddress = localAddress;
    this.#gone = new Promise((r) => (this.#markGone = r));
  }

  /** Resolves when the link is gone. */
  get gone(): Promise<void> {
    return this.#gone;
  }

  /** Whether transfers may use this slave. */
  get available(): boolean {
    return this.state === "online";
  }

  /** Sends a request and resolves with the reply's data; rejects with SlaveReplyError or SlaveGoneError. */
  request(body: RequestBody): Promise<Record<string, unknown>> {
    if (this.state === "gone") return Promise.reject(new SlaveGoneError(this.name));
    const id = this.#nextId++;
    const msg = { ...body, id } as SlaveRequest;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#link.write(msg).catch((e) => {
        this.#pending.delete(id);
        reject(e instanceof Error ? new SlaveGoneError(this.name) : e);
      });
    });
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
  setRemergeStarter(start: (() => Promise<void>) | null): void {
    this.#remergeStarter = start;
  }

  /**
   * Starts a full remerge of this online slave, which keeps serving meanwhile. Throws when the
   * slave is not online or a remerge already runs.
   */
  async startFullRemerge(): Promise<void> {
    if (this.state !== "online" || this.#remergeStarter === null) {
      throw new Error(`Slave ${this.name} is not online`);
    }
    if (this.remerging) throw new Error(`A remerge of ${this.name} is already running`);
    await this.#remergeStarter();
  }

  /** Sends a frame that needs no answer (heartbeat). */
  send(msg: object): Promise<void> {
    return this.#link.write(msg);
  }

  /** Routes a reply frame to its request. */
  resolveReply(id: number, data: Record<string, unknown>): void {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    p.resolve(data);
  }

  /** Routes an error frame to its request. */
  rejectReply(msg: ErrorMsg): void {
    const p = this.#pending.get(msg.id);
    if (!p) return;
    this.#pending.delete(msg.id);
    p.reject(new SlaveReplyError(this.name, msg));
  }

  /** Subscribes to progress events of transfer `xfer`; returns the unsubscribe function. */
  onProgress(xfer: string, fn: (bytes: number) => void): () => void {
    this.#progress.set(xfer, fn);
    return () => this.#progress.delete(xfer);
  }

  /** Delivers a progress event. */
  progress(msg: ProgressMsg): void {
    this.#progress.get(msg.xfer)?.(msg.bytes);
  }

  /** Marks the slave gone: fails every outstanding request and closes the link. Idempotent. */
  close(): void {
    if (this.state === "gone") return;
    this.state = "gone";
    this.#link.close();
    for (const p of this.#pending.values()) p.reject(new SlaveGoneError(this.name));
    this.#pending.clear();
    this.#progress.clear();
    this.#markGone();
  }
}
