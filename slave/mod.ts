/**
 * The slave: dials the master, proves the shared secret, reports its disk and, when the master
 * asks (`remerge_request`), its inventory: everything, only the folders changed since a time,
 * or some subtrees (see `scanTree`). It serves the master's requests (data connections, deletes,
 * renames, checksums) until the link drops, and dials again with exponential backoff until told
 * to stop.
 *
 * With `tls` (the default) the link runs over TLS. The slave does not verify the master's
 * certificate against a CA: it compares its SHA-256 fingerprint with `master_fingerprint` and
 * hangs up before sending anything when they differ; without a pin it accepts the certificate
 * and logs its fingerprint (trust on first use). The shared-secret handshake still runs inside.
 *
 * @module
 */
import { lockFolder } from "../shared/lock.ts";
import { sleep } from "../shared/timers.ts";
import { Buffer } from "node:buffer";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { isIP } from "node:net";
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
  type ListedDir,
  MAX_REMERGE_BATCH,
  parseFromMaster,
  PEER_TIMEOUT_MS,
  PROTOCOL_VERSION,
  type SlaveRequest,
} from "../shared/protocol.ts";
import {
  certFingerprint,
  type CertPair,
  connectTlsClient,
  ensureSelfSignedCert,
  type OpenSsl,
  type TlsByteConn,
} from "../shared/tls/mod.ts";
import { toSlaveError } from "./_errors.ts";
import {
  DATA_ENGINE_ENV,
  DATA_ENGINES,
  type DataEngine,
  type DataEngineName,
  nativeEngine,
} from "./data_engine.ts";
import { loadZeroCopy } from "./zero_copy.ts";
import { diskSpace, type ScanStats, scanTree, SINCE_SLACK_MS, Storage } from "./storage.ts";
import {
  announcedHost,
  type DataTlsOptions,
  TICKET_SECRET_BYTES,
  TransferManager,
} from "./transfer.ts";

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** Least time between two `disk` reports caused by finished requests. */
const DISK_REPORT_INTERVAL_MS = 1_000;
/** Cap on the JSON size of one remerge batch, well under MAX_FRAME_BYTES even for long paths. */
const REMERGE_BATCH_BYTES = 512 * 1024;
/** Cap on the JSON size of one directory marker (its subdirectory names). */
const DIR_MARKER_BYTES = 256 * 1024;
/** How long the slave waits for the master's `remerge_request` before scanning everything. */
export const REMERGE_REQUEST_WAIT_MS = 10_000;
/** Longest error message sent to the master. */
const MAX_ERROR_MESSAGE = 2_000;

/** Options of `runSlave`. */
export interface SlaveOptions {
  /**
   * The OpenSSL engine (`loadOpenSsl()`), for TLS data connections: it honours the master's
   * session-ticket keys, so data connections resume the client's control-connection session.
   * Without it node:tls is used (no resumption across processes). The link always uses node:tls.
   */
  tlsEngine?: OpenSsl;
  /** What moves plain data bytes (`chooseDataEngine()`); the native engine when absent. */
  dataEngine?: DataEngine;
}

/**
 * The data engine `config` (or the `DRFTPD_DATA_ENGINE` environment variable, which wins) asks
 * for. Loads libc for "zero_copy", so call it while `--allow-ffi` is granted; when that fails it
 * logs why and returns the native engine. Throws TypeError for an unknown engine in the variable.
 */
export function chooseDataEngine(config: SlaveConfig): DataEngine {
  const log = getLogger(["drftpd", "slave"]);
  const forced = Deno.env.get(DATA_ENGINE_ENV);
  if (forced !== undefined && forced !== "" && !isDataEngineName(forced)) {
    throw new TypeError(
      `Invalid ${DATA_ENGINE_ENV} "${forced}": expected one of ${DATA_ENGINES.join(", ")}`,
    );
  }
  const wanted = forced || config.slave.data_engine;
  if (wanted === "native") return nativeEngine;
  try {
    return loadZeroCopy();
  } catch (e) {
    log.warn("Zero-copy data engine unavailable ({error}); using the native engine", {
      error: errorText(e),
    });
    return nativeEngine;
  }
}

function isDataEngineName(s: string): s is DataEngineName {
  return (DATA_ENGINES as readonly string[]).includes(s);
}

/**
 * Runs the slave described by `config` until `signal` aborts: connects to the master, serves it,
 * and reconnects with backoff (0.5 s doubling to 30 s, jittered; reset after a welcome) whenever
 * the link fails. Rejects only when the storage root cannot be created or the TLS certificate
 * for data connections cannot be loaded (or created).
 */
export async function runSlave(
  config: SlaveConfig,
  signal: AbortSignal,
  options: SlaveOptions = {},
): Promise<void> {
  const log = getLogger(["drftpd", "slave"]);
  await Deno.mkdir(config.slave.root, { recursive: true });
  // A slave needs exclusive write access to its root: a second one on it stops here.
  using _lock = await lockFolder(config.slave.root, "Slave root");
  const storage = new Storage(await Deno.realPath(config.slave.root));
  const pair = await loadDataCert(config);
  const tls: DataTlsOptions = { cert: pair.cert, key: pair.key };
  if (options.tlsEngine) tls.engine = options.tlsEngine;
  const engine = options.dataEngine ?? nativeEngine;
  log.info("Slave {name} storing files in {root}", {
    name: config.slave.name,
    root: storage.root,
  });
  log.info("TLS data connections use certificate {fingerprint} ({engine})", {
    fingerprint: pair.fingerprint,
    engine: options.tlsEngine ? options.tlsEngine.version : "node:tls",
  });
  log.info("Plain data connections use the {engine} data engine", { engine: engine.name });
  let failures = 0;
  while (!signal.aborted) {
    const welcomed = await runSession(config, storage, { tls, engine }, signal);
    if (signal.aborted) break;
    if (welcomed) failures = 0;
    const delay = backoffDelay(failures++);
    log.info("Reconnecting to master in {seconds} s", { seconds: Math.round(delay / 100) / 10 });
    await sleep(delay, signal);
  }
  log.info("Slave {name} stopped", { name: config.slave.name });
}

/** How data connections are secured and what moves their bytes. */
interface DataOptions {
  tls: DataTlsOptions;
  engine: DataEngine;
}

/** The delay before reconnect attempt number `failures` (0-based), jittered ±20 %. */
function backoffDelay(failures: number): number {
  const base = BACKOFF_FIRST_MS * 2 ** Math.min(failures, 16);
  return Math.round(Math.min(BACKOFF_MAX_MS, base * (0.8 + Math.random() * 0.4)));
}

/**
 * The certificate for TLS data connections: `tls_cert`/`tls_key` when set, else a self-signed one
 * kept in `<root>.tls/` (next to the root, never inside it: it would join the inventory).
 */
export async function loadDataCert(config: SlaveConfig): Promise<CertPair> {
  const { tls_cert: certPath, tls_key: keyPath, root, name } = config.slave;
  if (certPath === "" && keyPath === "") {
    const dir = `${root.replace(/\/+$/, "")}.tls`;
    try {
      return await ensureSelfSignedCert(dir, name);
    } catch (e) {
      throw new Error(`Cannot load or create the TLS certificate in "${dir}": ${errorText(e)}`, {
        cause: e,
      });
    }
  }
  if (certPath === "" || keyPath === "") {
    throw new Error("Set both tls_cert and tls_key in the slave configuration, or neither");
  }
  const cert = await readPemFile(certPath, "certificate");
  const key = await readPemFile(keyPath, "private key");
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (e) {
    throw new Error(`Invalid TLS certificate "${certPath}": ${errorText(e)}`, { cause: e });
  }
  let matches: boolean;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(key));
  } catch (e) {
    throw new Error(`Invalid TLS private key "${keyPath}": ${errorText(e)}`, { cause: e });
  }
  if (!matches) {
    throw new Error(`TLS private key "${keyPath}" does not match certificate "${certPath}"`);
  }
  return { cert, key, fingerprint: certFingerprint(cert) };
}

async function readPemFile(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`Cannot read the TLS ${what} "${path}": ${errorText(e)}`, { cause: e });
  }
}

/** `"sha256:<lowercase hex>"` from a pin written with or without the prefix, colons or case. */
export function normalizeFingerprint(pin: string): string {
  const hex = pin.trim().toLowerCase().replace(/^sha256:/, "").replaceAll(":", "");
  return `sha256:${hex}`;
}

/** "host:port", bracketing IPv6 literals. */
function formatAddress(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** One connection to the master, from dial to close. Resolves whether the master welcomed us. */
async function runSession(
  config: SlaveConfig,
  storage: Storage,
  data: DataOptions,
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
  try {
    conn.setNoDelay(true); // small frames (replies, pings) must not wait for Nagle
  } catch {
    // not supported here; only latency suffers
  }
  const localHost = conn.localAddr.hostname;
  let secure: TlsByteConn | null = null;
  if (config.slave.tls) {
    secure = await secureLink(config, conn, address, signal);
    if (secure === null) return false;
  }
  const link = new FrameConn(secure ?? conn);
  const session = new LinkSession(config, storage, data, link, localHost, signal);
  const stop = () => link.close();
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

/**
 * Runs the TLS handshake on the link and checks the master's certificate against the pin.
 * Resolves the TLS connection, or null (everything closed and logged) when the handshake fails
 * or the certificate is not the pinned one: then nothing at all was sent to that peer.
 */
async function secureLink(
  config: SlaveConfig,
  conn: Deno.TcpConn,
  address: string,
  signal: AbortSignal,
): Promise<TlsByteConn | null> {
  const log = getLogger(["drftpd", "slave"]);
  const host = config.slave.master.host;
  let secure: TlsByteConn;
  try {
    // No CA check: the master's certificate is usually self-signed; the pin decides below.
    secure = await connectTlsClient(conn, {
      insecure: true,
      handshakeTimeoutMs: PEER_TIMEOUT_MS,
      signal,
      ...(isIP(host) === 0 ? { servername: host } : {}),
    });
  } catch (e) {
    if (!signal.aborted) {
      log.warn(
        `TLS handshake with master ${address} failed (is [slaves] tls on at the master?): {error}`,
        { error: errorText(e), master: address },
      );
    }
    return null;
  }
  const seen = secure.info.peerFingerprint;
  const pin = config.slave.master_fingerprint;
  if (pin !== "") {
    const expected = normalizeFingerprint(pin);
    if (seen !== expected) {
      log.error(
        `Master ${address} presented certificate {seen}, but master_fingerprint pins {expected}; ` +
          "not connecting",
        { seen: seen ?? "(none)", expected, master: address },
      );
      secure.abort();
      return null;
    }
    log.debug("Master certificate {fingerprint} matches the pin", { fingerprint: seen });
  } else {
    if (seen === undefined) {
      log.error(`Master ${address} presented no certificate; not connecting`, { master: address });
      secure.abort();
      return null;
    }
    log.info(
      `Accepted master certificate {fingerprint} of ${address}; pin it with master_fingerprint`,
      { fingerprint: seen, master: address },
    );
  }
  return secure;
}

/** The state of one established link: handshake, heartbeat, remerge and request dispatch. */
class LinkSession {
  #config: SlaveConfig;
  #storage: Storage;
  #data: DataOptions;
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
  /** Runs the remerge scans the master asked for, one after the other. */
  #scans: Promise<void> = Promise.resolve();
  #requestTimer: ReturnType<typeof setTimeout> | undefined;
  /** A full scan started without being asked: it answers the master's first request too. */
  #unasked = false;

  constructor(
    config: SlaveConfig,
    storage: Storage,
    data: DataOptions,
    link: FrameConn,
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
      tls: this.#data.tls,
      engine: this.#data.engine,
    });
    try {
      if (!(await this.#handshake())) return false;
      this.#welcomed = true;
      this.#log.info(`Connected to master ${address} as {name}`, {
        name: this.#config.slave.name,
        master: address,
      });
      await this.#sendDisk();
      // The master says what to scan (remerge_request); an old or stuck master gets everything.
      this.#requestTimer = setTimeout(() => {
        this.#requestTimer = undefined;
        this.#log.warn("No remerge request from the master after {seconds} s; sending everything", {
          seconds: REMERGE_REQUEST_WAIT_MS / 1000,
        });
        this.#unasked = true;
        this.#queueRemerge(0, undefined);
      }, REMERGE_REQUEST_WAIT_MS);
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
      clearTimeout(this.#requestTimer);
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
        case "tls_keys":
          transfers.setTicketKeys(decodeTicketSecret(msg.ticketSecret));
          this.#log.debug("Received new session-ticket keys for TLS data connections");
          break;
        case "remerge_request":
          clearTimeout(this.#requestTimer);
          this.#requestTimer = undefined;
          if (this.#unasked && msg.paths === undefined) {
            this.#unasked = false; // the full scan already running answers it
            break;
          }
          this.#queueRemerge(msg.since, msg.paths);
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
        this.#log.info("{dir} {path}: {bytes} bytes in {ms} ms{tls}", {
          dir: req.dir === "send" ? "Sent" : "Received",
          path: req.path,
          bytes: result.bytes,
          ms: result.ms,
          tls: result.tls
            ? ` over ${result.tls.protocol}${result.tls.resumed ? " (resumed)" : ""}`
            : "",
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
      case "set_mtime":
        await this.#storage.setMtime(req.path, req.mtime);
        return {};
    }
  }

  /** Runs a remerge scan after the ones already asked for. */
  #queueRemerge(since: number, paths: readonly string[] | undefined): void {
    const run = this.#scans.then(() => this.#remerge(since, paths));
    this.#scans = run;
    this.#track(run);
  }

  /**
   * Scans (everything, the directories changed since `since`, or the subtrees `paths`) and
   * streams the result in batches bounded in count and bytes, then `remerge_done`.
   */
  async #remerge(since: number, paths: readonly string[] | undefined): Promise<void> {
    if (this.#ended.signal.aborted) return;
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
        const item of scanTree(this.#storage.root, { since, paths: paths ?? ["/"], stats })
      ) {
        if (this.#ended.signal.aborted) return;
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

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
