/**
 * One link session of the slave, from dial to close: proves the shared secret, reports its disk,
 * answers the heartbeat, and hands the master's frames on: inventory requests to
 * `inventory.ts`, requests to `requests.ts`, session-ticket keys to the transfer manager.
 *
 * @module
 */
import { Buffer } from "node:buffer";
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
  type FromMaster,
  type FromSlave,
  HEARTBEAT_MS,
  parseFromMaster,
  PEER_TIMEOUT_MS,
  PROTOCOL_VERSION,
} from "../shared/protocol.ts";
import { errorText } from "./_errors.ts";
import { dialMaster } from "./dial.ts";
import { InventoryStream } from "./inventory.ts";
import { RequestHandler } from "./requests.ts";
import type { DataEngine } from "./data_engine.ts";
import { diskSpace, type Storage } from "./storage.ts";
import {
  announcedHost,
  type DataTlsOptions,
  TICKET_SECRET_BYTES,
  TransferManager,
} from "./transfer.ts";

/** Least time between two `disk` reports caused by finished requests. */
const DISK_REPORT_INTERVAL_MS = 1_000;
/** Least time between two `progress` reports of one transfer: often enough for a live speed. */
const PROGRESS_INTERVAL_MS = 500;
/** How often a stop looks whether unclaimed passive listeners are gone. */
const DRAIN_CHECK_MS = 200;

/** How data connections are secured and what moves their bytes. */
export interface DataOptions {
  tls: DataTlsOptions;
  engine: DataEngine;
}

/** One connection to the master, from dial to close. Resolves whether the master welcomed us. */
export async function runSession(
  config: SlaveConfig,
  storage: Storage,
  data: DataOptions,
  signal: AbortSignal,
): Promise<boolean> {
  const dialed = await dialMaster(config, signal);
  if (dialed === null) return false;
  const { secure, tcp, address, localHost } = dialed;
  const link = new FrameConn<FromSlave>(secure ?? tcp);
  const session = new LinkSession(config, storage, data, link, localHost, signal);
  // A clean stop lets running transfers finish, then says so, so the master does not take it
  // for a failure.
  const stop = () =>
    session.drain(config.slave.stop_grace * 1000).then(() => session.leave()).finally(() =>
      link.close()
    );
  signal.addEventListener("abort", stop, { once: true });
  try {
    return await session.run(address);
  } finally {
    signal.removeEventListener("abort", stop);
    link.close();
    // TLS closes gracefully (close_notify, then the master's end; at most CLOSE_GRACE_MS).
    if (secure !== null) await secure.closed;
  }
}

/** The state of one established link: handshake, heartbeat, disk reports and dispatch. */
class LinkSession {
  #config: SlaveConfig;
  #storage: Storage;
  #data: DataOptions;
  #link: FrameConn<FromSlave>;
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
  /** Set once the slave is stopping: new transfers are refused. */
  #stopping = false;
  /** Pending `listen` and `transfer` requests, which a stop waits for. */
  #transferTasks = new Set<Promise<void>>();
  #transfers: TransferManager | undefined;

  constructor(
    config: SlaveConfig,
    storage: Storage,
    data: DataOptions,
    link: FrameConn<FromSlave>,
    localHost: string,
    shutdown: AbortSignal,
  ) {
    this.#shutdown = shutdown;
    this.#config = config;
    this.#storage = storage;
    this.#data = data;
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
      progressIntervalMs: PROGRESS_INTERVAL_MS,
      tls: this.#data.tls,
      engine: this.#data.engine,
    });
    this.#transfers = transfers;
    const inventory = new InventoryStream(this.#storage.root, this.#link, {
      ended: this.#ended.signal,
      track: (task) => this.#track(task),
    });
    const requests = new RequestHandler({
      storage: this.#storage,
      transfers,
      ended: this.#ended.signal,
      send: (msg) => this.#send(msg),
      diskChanged: () => this.#scheduleDisk(),
      stopping: () => this.#stopping,
    });
    try {
      if (!(await this.#handshake())) return false;
      this.#welcomed = true;
      this.#log.info(`Connected to master ${address} as {name}`, {
        name: this.#config.slave.name,
        master: address,
      });
      await this.#sendDisk();
      inventory.armFallback();
      await this.#serve(transfers, inventory, requests);
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
      inventory.close();
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
  async #serve(
    transfers: TransferManager,
    inventory: InventoryStream,
    requests: RequestHandler,
  ): Promise<void> {
    for (;;) {
      const msg = await this.#next();
      if (msg === null) return;
      switch (msg.type) {
        case "ping":
          break;
        case "tls_keys":
          transfers.setTicketKeys(decodeTicketSecret(msg.ticketSecret));
          this.#log.debug("Received new session-ticket keys for TLS data connections");
          break;
        case "remerge_request":
          inventory.requested(msg);
          break;
        case "hello":
        case "welcome":
        case "refused":
          throw new LinkProtocolError(`Unexpected "${msg.type}" after the handshake`);
        default: {
          const task = requests.handle(msg);
          this.#track(task);
          if (msg.type === "listen" || msg.type === "transfer") {
            this.#transferTasks.add(task);
            task.finally(() => this.#transferTasks.delete(task)).catch(() => {});
          }
        }
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

  /**
   * Refuses new transfers from now on and waits until the running ones (and passive listeners
   * still waiting for theirs) are done, at most `graceMs`. Never throws.
   */
  async drain(graceMs: number): Promise<void> {
    this.#stopping = true;
    const busy = () => this.#transferTasks.size + (this.#transfers?.pendingListeners ?? 0);
    if (!this.#welcomed || this.#link.closed || busy() === 0) return;
    this.#log.info("Stopping: no new transfers; waiting up to {seconds} s for {count} running", {
      seconds: graceMs / 1000,
      count: busy(),
    });
    const deadline = Date.now() + graceMs;
    while (busy() > 0 && !this.#link.closed && Date.now() < deadline) {
      // A listener ends without a task when its accept times out: look again now and then.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const tick = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, Math.min(DRAIN_CHECK_MS, Math.max(0, deadline - Date.now())));
      });
      await Promise.race([tick, ...this.#transferTasks]).finally(() => clearTimeout(timer));
    }
    if (busy() > 0) {
      this.#log.warn("Stop grace over: closing {count} unfinished transfer(s)", { count: busy() });
    }
  }

  /** Tells the master this slave is stopping (once welcomed); never throws. */
  async leave(): Promise<void> {
    if (!this.#welcomed) return;
    await this.#link.write({ type: "leaving", reason: "stopping" }).catch(() => {});
  }

  /** Sends an event or answer; a closed link is noticed by the read loop, so errors are dropped. */
  #send(msg: FromSlave): void {
    this.#link.write(msg).catch(() => {});
  }

  /** Keeps `task` until it settles, so the session can wait for it on close. */
  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task)).catch(() => {});
  }
}

/** The 48 bytes of a `tls_keys` secret; a LinkProtocolError (the link drops) otherwise. */
function decodeTicketSecret(b64: string): Uint8Array {
  const bytes = /^[A-Za-z0-9+/]*={0,2}$/.test(b64)
    ? new Uint8Array(Buffer.from(b64, "base64"))
    : new Uint8Array(0);
  if (bytes.length !== TICKET_SECRET_BYTES) {
    throw new LinkProtocolError(
      `Invalid "tls_keys": expected base64 of ${TICKET_SECRET_BYTES} bytes`,
    );
  }
  return bytes;
}
