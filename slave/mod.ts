/**
 * The slave: dials the master, proves the shared secret, reports its disk and inventory, then
 * serves the master's requests (data connections, deletes, renames, checksums) until the link
 * drops, and dials again with exponential backoff until told to stop.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { SlaveConfig } from "../shared/config_types.ts";
import {
  FrameConn,
  LinkProtocolError,
  masterProof,
  newNonce,
  proofsEqual,
  slaveProof,
} from "../shared/link.ts";
import {
  type ErrorMsg,
  type FromMaster,
  HEARTBEAT_MS,
  type InventoryEntry,
  MAX_REMERGE_BATCH,
  parseFromMaster,
  PEER_TIMEOUT_MS,
  PROTOCOL_VERSION,
  type SlaveRequest,
} from "../shared/protocol.ts";
import { toSlaveError } from "./_errors.ts";
import { diskSpace, scanInventory, Storage } from "./storage.ts";
import { announcedHost, TransferManager } from "./transfer.ts";

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** Least time between two `disk` reports caused by finished requests. */
const DISK_REPORT_INTERVAL_MS = 1_000;
/** Cap on the JSON size of one remerge batch, well under MAX_FRAME_BYTES even for long paths. */
const REMERGE_BATCH_BYTES = 512 * 1024;
/** Longest error message sent to the master. */
const MAX_ERROR_MESSAGE = 2_000;

/**
 * Runs the slave described by `config` until `signal` aborts: connects to the master, serves it,
 * and reconnects with backoff (0.5 s doubling to 30 s, jittered; reset after a welcome) whenever
 * the link fails. Rejects only when the storage root cannot be created.
 */
export async function runSlave(config: SlaveConfig, signal: AbortSignal): Promise<void> {
  const log = getLogger(["drftpd", "slave"]);
  await Deno.mkdir(config.slave.root, { recursive: true });
  const storage = new Storage(await Deno.realPath(config.slave.root));
  log.info("Slave {name} storing files in {root}", {
    name: config.slave.name,
    root: storage.root,
  });
  let failures = 0;
  while (!signal.aborted) {
    const welcomed = await runSession(config, storage, signal);
    if (signal.aborted) break;
    if (welcomed) failures = 0;
    const delay = backoffDelay(failures++);
    log.info("Reconnecting to master in {seconds} s", { seconds: Math.round(delay / 100) / 10 });
    await sleep(delay, signal);
  }
  log.info("Slave {name} stopped", { name: config.slave.name });
}

/** The delay before reconnect attempt number `failures` (0-based), jittered ±20 %. */
function backoffDelay(failures: number): number {
  const base = BACKOFF_FIRST_MS * 2 ** Math.min(failures, 16);
  return Math.round(Math.min(BACKOFF_MAX_MS, base * (0.8 + Math.random() * 0.4)));
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** "host:port", bracketing IPv6 literals. */
function formatAddress(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** One connection to the master, from dial to close. Resolves whether the master welcomed us. */
async function runSession(
  config: SlaveConfig,
  storage: Storage,
  signal: AbortSignal,
): Promise<boolean> {
  const log = getLogger(["drftpd", "slave"]);
  const { host, port } = config.slave.master;
  const address = formatAddress(host, port);
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({
      hostname: host,
      port,
      transport: "tcp",
      signal: AbortSignal.any([signal, AbortSignal.timeout(PEER_TIMEOUT_MS)]),
    });
  } catch (e) {
    if (!signal.aborted) {
      log.warn(`Cannot connect to master ${address}: {error}`, { error: errorText(e) });
    }
    return false;
  }
  using link = new FrameConn(conn);
  const session = new LinkSession(config, storage, link, conn.localAddr.hostname, signal);
  const stop = () => link.close();
  signal.addEventListener("abort", stop, { once: true });
  try {
    return await session.run(address);
  } finally {
    signal.removeEventListener("abort", stop);
  }
}

/** The state of one established link: handshake, heartbeat, remerge and request dispatch. */
class LinkSession {
  #config: SlaveConfig;
  #storage: Storage;
  #link: FrameConn;
  #localHost: string;
  #shutdown: AbortSignal;
  #log = getLogger(["drftpd", "slave"]);
  /** Aborts when the session ends: stops the remerge scan and long checksums. */
  #ended = new AbortController();
  #lastReceived = Date.now();
  #welcomed = false;
  #tasks = new Set<Promise<void>>();
  #lastDisk = 0;
  #diskTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    config: SlaveConfig,
    storage: Storage,
    link: FrameConn,
    localHost: string,
    shutdown: AbortSignal,
  ) {
    this.#shutdown = shutdown;
    this.#config = config;
    this.#storage = storage;
    this.#link = link;
    this.#localHost = localHost;
  }

  /** Runs the session until the link ends; resolves whether the master welcomed us. */
  async run(address: string): Promise<boolean> {
    const heartbeat = setInterval(() => this.#heartbeat(), HEARTBEAT_MS);
    const transfers = new TransferManager(this.#storage, {
      listenAddress: this.#config.slave.listen_address,
      publicHost: announcedHost(this.#config.slave, this.#localHost),
      passivePorts: this.#config.slave.passive_ports,
    }, {
      onProgress: (xfer, bytes) => this.#send({ type: "progress", xfer, bytes }),
    });
    try {
      if (!(await this.#handshake())) return false;
      this.#welcomed = true;
      this.#log.info(`Connected to master ${address} as {name}`, {
        name: this.#config.slave.name,
        master: address,
      });
      await this.#sendDisk();
      this.#track(this.#remerge());
      await this.#serve(transfers);
      this.#lost(address);
    } catch (e) {
      if (!this.#link.closed) {
        this.#log.error(`Dropping the link to master ${address}: {error}`, {
          error: errorText(e),
          master: address,
        });
      } else this.#lost(address);
    } finally {
      clearInterval(heartbeat);
      clearTimeout(this.#diskTimer);
      this.#link.close();
      this.#ended.abort();
      transfers.close();
      await Promise.allSettled([...this.#tasks]);
    }
    return this.#welcomed;
  }

  #lost(address: string): void {
    if (this.#shutdown.aborted) {
      this.#log.info(`Closed the link to master ${address}`, { master: address });
    } else if (this.#welcomed) {
      this.#log.warn(`Lost the link to master ${address}`, { master: address });
    } else {
      this.#log.warn(`Master ${address} closed the link during the handshake`, { master: address });
    }
  }

  /** Sends a ping, or closes the link when the master has been silent too long. */
  #heartbeat(): void {
    const silent = Date.now() - this.#lastReceived;
    if (silent > PEER_TIMEOUT_MS) {
      this.#log.warn("Master silent for {seconds} s, declaring it gone", {
        seconds: Math.round(silent / 1000),
      });
      this.#link.close();
      return;
    }
    if (this.#welcomed) this.#send({ type: "ping", t: Date.now() });
  }

  /** The next validated frame, or null at the end of the link. Throws on protocol violations. */
  async #next(): Promise<FromMaster | null> {
    const raw = await this.#link.read();
    if (raw === null) return null;
    this.#lastReceived = Date.now();
    return parseFromMaster(raw);
  }

  /** hello → auth → welcome/refused. Resolves true when both sides proved the secret. */
  async #handshake(): Promise<boolean> {
    const { name, secret } = this.#config.slave;
    const hello = await this.#next();
    if (hello === null) {
      this.#log.warn("Master closed the link before the handshake");
      return false;
    }
    if (hello.type !== "hello") {
      throw new LinkProtocolError(`Expected "hello", got "${hello.type}"`);
    }
    if (hello.v !== PROTOCOL_VERSION) {
      this.#log.error("Master speaks protocol version {theirs}, this slave speaks {ours}", {
        theirs: hello.v,
        ours: PROTOCOL_VERSION,
      });
      return false;
    }
    const nonce = newNonce();
    await this.#link.write({
      type: "auth",
      v: PROTOCOL_VERSION,
      name,
      nonce,
      mac: slaveProof(secret, hello.nonce, name),
    });
    let answer = await this.#next();
    while (answer?.type === "ping") answer = await this.#next();
    if (answer === null) {
      this.#log.error("Master closed the link during the handshake");
      return false;
    }
    if (answer.type === "refused") {
      this.#log.error("Master refused slave {name}: {reason}", { name, reason: answer.reason });
      return false;
    }
    if (answer.type !== "welcome") {
      throw new LinkProtocolError(`Expected "welcome" or "refused", got "${answer.type}"`);
    }
    if (!proofsEqual(answer.mac, masterProof(secret, nonce, name))) {
      this.#log.error("Master failed to prove the shared secret; not trusting it", { name });
      return false;
    }
    return true;
  }

  /** Reads and dispatches frames until the link ends. */
  async #serve(transfers: TransferManager): Promise<void> {
    for (;;) {
      const msg = await this.#next();
      if (msg === null) return;
      switch (msg.type) {
        case "ping":
          break;
        case "hello":
        case "welcome":
        case "refused":
          throw new LinkProtocolError(`Unexpected "${msg.type}" after the handshake`);
        default:
          this.#track(this.#handle(msg, transfers));
      }
    }
  }

  /** Performs one request and answers it with `reply` or `error`. Never throws. */
  async #handle(req: SlaveRequest, transfers: TransferManager): Promise<void> {
    let data: Record<string, unknown>;
    try {
      data = await this.#perform(req, transfers);
    } catch (e) {
      const err = toSlaveError(e);
      const msg: ErrorMsg = {
        type: "error",
        id: req.id,
        code: err.code,
        message: err.message.slice(0, MAX_ERROR_MESSAGE),
      };
      if (err.partial !== undefined) msg.partial = err.partial;
      this.#log.info("Request {id} ({type}) failed: {code}: {message}", {
        id: req.id,
        type: req.type,
        code: err.code,
        message: err.message,
      });
      this.#send(msg);
      if (err.partial !== undefined) this.#scheduleDisk();
      return;
    }
    this.#send({ type: "reply", id: req.id, data });
    if (req.type === "delete" || req.type === "rmdir" || req.type === "rename") {
      this.#scheduleDisk();
    } else if (req.type === "transfer" && req.dir === "receive") {
      this.#scheduleDisk();
    }
  }

  async #perform(req: SlaveRequest, transfers: TransferManager): Promise<Record<string, unknown>> {
    switch (req.type) {
      case "listen":
        return { ...transfers.listen(req.xfer, req.peer) };
      case "transfer": {
        const result = await transfers.transfer(req);
        this.#log.info("{dir} {path}: {bytes} bytes in {ms} ms", {
          dir: req.dir === "send" ? "Sent" : "Received",
          path: req.path,
          bytes: result.bytes,
          ms: result.ms,
        });
        return { ...result };
      }
      case "abort":
        transfers.abort(req.xfer);
        return {};
      case "delete":
        await this.#storage.deleteFile(req.path);
        return {};
      case "rename":
        await this.#storage.rename(req.from, req.to);
        return {};
      case "rmdir":
        await this.#storage.rmdir(req.path);
        return {};
      case "checksum":
        return { ...(await this.#storage.checksum(req.path, this.#ended.signal)) };
    }
  }

  /** Streams the inventory in batches bounded in count and bytes, then `remerge_done`. */
  async #remerge(): Promise<void> {
    const encoder = new TextEncoder();
    const started = performance.now();
    let batch: InventoryEntry[] = [];
    let batchBytes = 0;
    let files = 0;
    try {
      for await (const entry of scanInventory(this.#storage.root)) {
        if (this.#ended.signal.aborted) return;
        const size = encoder.encode(JSON.stringify(entry)).length + 1;
        if (batch.length >= MAX_REMERGE_BATCH || batchBytes + size > REMERGE_BATCH_BYTES) {
          await this.#link.write({ type: "remerge", entries: batch });
          batch = [];
          batchBytes = 0;
        }
        batch.push(entry);
        batchBytes += size;
        files++;
      }
      if (batch.length > 0) await this.#link.write({ type: "remerge", entries: batch });
      await this.#link.write({ type: "remerge_done", files });
      this.#log.info("Sent the inventory: {files} files in {ms} ms", {
        files,
        ms: Math.round(performance.now() - started),
      });
    } catch (e) {
      if (!this.#link.closed) {
        this.#log.error("Remerge failed, dropping the link: {error}", { error: errorText(e) });
        this.#link.close();
      }
    }
  }

  /** Reports free/total space now. */
  async #sendDisk(): Promise<void> {
    this.#lastDisk = Date.now();
    try {
      const { free, total } = await diskSpace(this.#storage.root);
      await this.#link.write({ type: "disk", free, total });
    } catch (e) {
      if (!this.#link.closed) {
        this.#log.warn("Cannot report disk space: {error}", { error: errorText(e) });
      }
    }
  }

  /** Reports disk space soon, at most once per DISK_REPORT_INTERVAL_MS. */
  #scheduleDisk(): void {
    if (this.#diskTimer !== undefined || this.#link.closed) return;
    const wait = Math.max(0, this.#lastDisk + DISK_REPORT_INTERVAL_MS - Date.now());
    this.#diskTimer = setTimeout(() => {
      this.#diskTimer = undefined;
      this.#track(this.#sendDisk());
    }, wait);
  }

  /** Sends an event or answer; a closed link is noticed by the read loop, so errors are dropped. */
  #send(msg: object): void {
    this.#link.write(msg).catch(() => {});
  }

  /** Keeps `task` until it settles, so the session can wait for it on close. */
  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task)).catch(() => {});
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
