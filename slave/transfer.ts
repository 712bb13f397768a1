/**
 * Data connections of the slave: single-use passive listeners (`listen`), active connects, and the
 * byte pumps of `transfer` (send = file → socket, receive = socket → file, with CRC32 on the fly).
 *
 * With `tls: "server"` (PROT P) the slave runs the TLS server handshake on the data connection,
 * passive or active, with its own certificate and the master's session-ticket secret (so the
 * OpenSSL engine resumes the client's control-connection session); with `"client"` (SSCN/CPSV,
 * secure FXP) it is the TLS client and does not verify the peer.
 *
 * @module
 */
import { crc32 } from "node:zlib";
import { getLogger } from "@logtape/logtape";
import type { PortRange, SlaveConfig } from "../shared/config_types.ts";
import type { ByteConn } from "../shared/link.ts";
import type { SiblingSource, TransferReq, TransferResult } from "../shared/protocol.ts";
import {
  connectTlsClient,
  type OpenSsl,
  type TlsByteConn,
  TlsHandshakeError,
  upgradeToTlsServer,
} from "../shared/tls/mod.ts";
import { errorText, type PartialInfo, SlaveError, toSlaveError } from "./_errors.ts";
import { copyTempPath, openRegularFile, type Storage, uploadTempPath } from "./storage.ts";
import { writeAll, writeAllSync } from "../shared/bytes.ts";
import { closeQuietly, sameHost } from "../shared/net.ts";
import { type DataEngine, type DataSocket, nativeEngine, relayStream } from "./data_engine.ts";

/** Failed copies kept at once for a later copy to continue (`verify.keep`); more are dropped. */
const MAX_KEPT_COPIES = 1000;

/** Tunables of a TransferManager; the defaults are the production values. */
export interface TransferOptions {
  /** How long a passive listener waits for its data connection, ms. Default 60 000. */
  acceptTimeoutMs?: number;
  /** How long an active connect may take, ms. Default 30 000. */
  connectTimeoutMs?: number;
  /** Least time between two progress reports of one transfer, ms. Default 1 000. */
  progressIntervalMs?: number;
  /** Called with the bytes moved so far by a running transfer (throttled). */
  onProgress?: (xfer: string, bytes: number) => void;
  /** Certificate (and engine) for TLS data connections; without it `tls` other than "none" fails. */
  tls?: DataTlsOptions;
  /** How long a TLS handshake on a data connection may take, ms. Default 30 000. */
  handshakeTimeoutMs?: number;
  /** What moves the bytes of plain (non-TLS) transfers; default the native engine. */
  engine?: DataEngine;
}

/** What the slave needs to speak TLS on data connections. */
export interface DataTlsOptions {
  /** PEM certificate (chain) presented when the slave is the TLS server. */
  cert: string;
  /** PEM private key of `cert`. */
  key: string;
  /** The OpenSSL engine (honours the shared ticket keys); node:tls when absent. */
  engine?: OpenSsl;
}

/** Where data sockets bind and what address the slave announces for them. */
export interface DataNetwork {
  /** Address passive listeners bind to ("0.0.0.0" = all). */
  listenAddress: string;
  /** Address announced to the master in the `listen` reply. */
  publicHost: string;
  /** Ports passive listeners may use. */
  passivePorts: PortRange;
}

/** A passive listener waiting for (or holding) its one data connection. */
interface PassiveSlot {
  listener: Deno.TcpListener;
  /** The accepted connection, until a transfer takes it over. */
  conn: Deno.TcpConn | null;
  accepted: PromiseWithResolvers<Deno.TcpConn>;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Why the slot ended early, given to a transfer that waits for it. */
  failure: SlaveError | null;
  /** Whether a transfer took this slot (it then owns `conn`). */
  claimed: boolean;
}

const DEFAULT_ACCEPT_TIMEOUT_MS = 60_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
const DEFAULT_PROGRESS_INTERVAL_MS = 1_000;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;
/** Length of the decoded session-ticket secret of a `tls_keys` message. */
export const TICKET_SECRET_BYTES = 48;
const WILDCARD_ADDRESSES: ReadonlySet<string> = new Set(["0.0.0.0", "::", "[::]", ""]);

/**
 * The address to announce for passive data connections: `public_address` if set, else a concrete
 * `listen_address`, else `linkLocalHost` (the local address of the link socket to the master).
 */
export function announcedHost(slave: SlaveConfig["slave"], linkLocalHost: string): string {
  if (slave.public_address !== "") return slave.public_address;
  if (!WILDCARD_ADDRESSES.has(slave.listen_address)) return slave.listen_address;
  return linkLocalHost;
}

/**
 * Owns every data connection of one link session. `close()` (on disconnect) aborts the running
 * transfers and closes the passive listeners.
 */
export class TransferManager {
  #storage: Storage;
  #net: DataNetwork;
  #acceptTimeoutMs: number;
  #connectTimeoutMs: number;
  #progressIntervalMs: number;
  #onProgress: (xfer: string, bytes: number) => void;
  #tls: DataTlsOptions | undefined;
  #handshakeTimeoutMs: number;
  #engine: DataEngine;
  #ticketKeys: Uint8Array | undefined;
  #passive = new Map<string, PassiveSlot>();
  #running = new Map<string, AbortController>();
  #closed = false;
  /** Copies kept after they failed (`verify.keep`): id → real path of what arrived. */
  #kept = new Map<string, string>();
  #log = getLogger(["drftpd", "slave"]);

  /** Creates a manager storing files in `storage` and opening data sockets as `net` says. */
  constructor(storage: Storage, net: DataNetwork, options: TransferOptions = {}) {
    this.#storage = storage;
    this.#net = net;
    this.#acceptTimeoutMs = options.acceptTimeoutMs ?? DEFAULT_ACCEPT_TIMEOUT_MS;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#progressIntervalMs = options.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
    this.#onProgress = options.onProgress ?? (() => {});
    this.#tls = options.tls;
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.#engine = options.engine ?? nativeEngine;
  }

  /**
   * Sets the session-ticket secret (48 bytes, from the master's `tls_keys`) for TLS data
   * connections where the slave is the server; later handshakes use it. Throws RangeError for
   * another length.
   */
  setTicketKeys(keys: Uint8Array): void {
    if (keys.length !== TICKET_SECRET_BYTES) {
      throw new RangeError(
        `Invalid ticket secret: expected ${TICKET_SECRET_BYTES} bytes, got ${keys.length}`,
      );
    }
    this.#ticketKeys = keys.slice();
  }

  /** Number of passive listeners still open or holding an unclaimed connection. */
  get pendingListeners(): number {
    return this.#passive.size;
  }

  /**
   * Opens a single-use passive listener for transfer `xfer` on a free port of the passive range.
   * Only `peer` may connect (null = anyone); others are closed at once. "no_port" if none is free.
   */
  listen(xfer: string, peer: string | null): { port: number; host: string } {
    if (this.#closed) throw new SlaveError("data_connection", "The link to the master is closed");
    if (this.#passive.has(xfer) || this.#running.has(xfer)) {
      throw new SlaveError("bad_request", `Transfer id already in use: "${xfer}"`);
    }
    const listener = this.#bind();
    const slot: PassiveSlot = {
      listener,
      conn: null,
      accepted: Promise.withResolvers<Deno.TcpConn>(),
      timer: undefined,
      failure: null,
      claimed: false,
    };
    slot.accepted.promise.catch(() => {}); // a transfer may never come to read the failure
    slot.timer = setTimeout(() => this.#expire(xfer, slot), this.#acceptTimeoutMs);
    this.#passive.set(xfer, slot);
    void this.#acceptLoop(xfer, slot, peer);
    return { port: listener.addr.port, host: this.#net.publicHost };
  }

  /** Runs transfer `req` to its end. Throws SlaveError (with `partial` for a failed receive). */
  async transfer(req: TransferReq): Promise<TransferResult> {
    if (this.#closed) throw new SlaveError("data_connection", "The link to the master is closed");
    if (this.#running.has(req.xfer)) {
      throw new SlaveError("bad_request", `Transfer already running: "${req.xfer}"`);
    }
    const source = req.source;
    if (source !== undefined) checkSiblingSend(req, source);
    // The client's passive slot, and for a sibling send the one the holder connects to.
    const slots: [string, PassiveSlot][] = [];
    let slot: PassiveSlot | null = null;
    if (req.endpoint.kind === "passive") {
      slot = this.#claim(req.xfer, "transfer");
      slots.push([req.xfer, slot]);
    }
    let sourceSlot: PassiveSlot | null = null;
    if (source !== undefined) {
      try {
        sourceSlot = this.#claim(source.xfer, "the holder of");
      } catch (e) {
        if (slot !== null) this.#release(req.xfer, slot);
        throw e;
      }
      slots.push([source.xfer, sourceSlot]);
    }
    const ctl = new AbortController();
    this.#running.set(req.xfer, ctl);
    const onAbort = () => {
      for (const [xfer, s] of slots) this.#discard(xfer, s, abortedError(req.xfer));
    };
    ctl.signal.addEventListener("abort", onAbort, { once: true });
    try {
      if ((req.tls !== "none" || source?.tls === "server") && this.#tls === undefined) {
        throw new SlaveError("data_connection", "TLS requested, but this slave has no certificate");
      }
      if (source !== undefined) {
        return await this.#sendFromSibling(req, source, slot, sourceSlot!, ctl.signal);
      }
      return req.dir === "send"
        ? await this.#send(req, slot, ctl.signal)
        : await this.#receive(req, slot, ctl.signal);
    } finally {
      ctl.signal.removeEventListener("abort", onAbort);
      for (const [xfer, s] of slots) this.#release(xfer, s);
      if (this.#running.get(req.xfer) === ctl) this.#running.delete(req.xfer);
    }
  }

  /** Takes the passive slot of `xfer` for a transfer (it then owns the connection). */
  #claim(xfer: string, what: string): PassiveSlot {
    const slot = this.#passive.get(xfer);
    if (slot === undefined) {
      throw new SlaveError("data_connection", `No passive listener for ${what} "${xfer}"`);
    }
    this.#passive.delete(xfer);
    slot.claimed = true;
    return slot;
  }

  /** Ends a claimed slot after its transfer, closing a connection the transfer never took. */
  #release(xfer: string, slot: PassiveSlot): void {
    this.#discard(xfer, slot, abortedError(xfer));
    if (slot.conn !== null) closeQuietly(slot.conn); // in case the transfer failed before using it
  }

  /** Aborts transfer `xfer`: closes its listener or data socket; the transfer fails with "aborted". */
  abort(xfer: string): void {
    this.#running.get(xfer)?.abort();
    const slot = this.#passive.get(xfer);
    if (slot !== undefined) this.#discard(xfer, slot, abortedError(xfer));
    this.#dropKept(xfer);
  }

  /** Deletes what a failed copy kept under id `keep` (`verify.keep`), if anything. */
  #dropKept(keep: string): void {
    const real = this.#kept.get(keep);
    if (real === undefined) return;
    this.#kept.delete(keep);
    Deno.remove(real).catch(() => {});
  }

  /** Aborts every transfer and closes every listener. Safe to call more than once. */
  close(): void {
    this.#closed = true;
    for (const ctl of this.#running.values()) ctl.abort();
    // Kept copies only resume for the master that kept them going: none will after this.
    for (const keep of [...this.#kept.keys()]) this.#dropKept(keep);
    for (const [xfer, slot] of [...this.#passive]) {
      this.#discard(xfer, slot, new SlaveError("aborted", "The link to the master closed"));
    }
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  // ------------------------------------------------------------------ passive listeners

  #bind(): Deno.TcpListener {
    const { from, to } = this.#net.passivePorts;
    const ports = shuffledRange(from, to);
    let last: unknown = null;
    for (const port of ports) {
      try {
        return Deno.listen({ hostname: this.#net.listenAddress, port, transport: "tcp" });
      } catch (e) {
        last = e;
      }
    }
    const why = last instanceof Error ? `: ${last.message}` : "";
    throw new SlaveError("no_port", `No free passive port in ${from}-${to}${why}`);
  }

  async #acceptLoop(xfer: string, slot: PassiveSlot, peer: string | null): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await slot.listener.accept();
      } catch {
        slot.accepted.reject(
          slot.failure ?? new SlaveError("data_connection", `Listener for "${xfer}" closed`),
        );
        return;
      }
      const from = conn.remoteAddr.hostname;
      if (slot.failure !== null) {
        closeQuietly(conn);
        slot.accepted.reject(slot.failure);
        return;
      }
      if (peer !== null && !sameHost(from, peer)) {
        // Security: only the client the master named may open this data connection.
        this.#log.warn("Refused data connection for {xfer} from {from}: expected {peer}", {
          xfer,
          from,
          peer,
        });
        closeQuietly(conn);
        continue;
      }
      slot.conn = conn;
      this.#engine.adopt?.(conn);
      closeQuietly(slot.listener);
      if (slot.claimed) clearTimeout(slot.timer);
      slot.accepted.resolve(conn);
      return;
    }
  }

  /** The accept timeout fired: fail a waiting transfer, or drop an unclaimed slot. */
  #expire(xfer: string, slot: PassiveSlot): void {
    if (slot.claimed && slot.conn !== null) return; // handed over in time
    const secs = Math.round(this.#acceptTimeoutMs / 1000);
    this.#log.warn("No data connection for {xfer} within {secs} s", { xfer, secs });
    this.#discard(
      xfer,
      slot,
      new SlaveError("timeout", `No data connection for "${xfer}" within ${secs} s`),
    );
  }

  /** Ends a slot: clears its timer, closes its listener (and its connection unless claimed). */
  #discard(xfer: string, slot: PassiveSlot, failure: SlaveError): void {
    clearTimeout(slot.timer);
    if (this.#passive.get(xfer) === slot) this.#passive.delete(xfer);
    slot.failure ??= failure;
    closeQuietly(slot.listener);
    if (!slot.claimed && slot.conn !== null) {
      closeQuietly(slot.conn);
      slot.conn = null;
    }
    slot.accepted.reject(slot.failure);
  }

  // ------------------------------------------------------------------ data connections

  /**
   * The data connection of a transfer: the accepted passive socket or an active connect. The
   * caller owns it (wrap it in a `DataLink` at once).
   */
  async #dataConn(
    req: Pick<TransferReq, "xfer" | "endpoint">,
    slot: PassiveSlot | null,
    signal: AbortSignal,
  ): Promise<Deno.TcpConn> {
    if (signal.aborted) throw abortedError(req.xfer);
    if (slot !== null) {
      const conn = await slot.accepted.promise;
      clearTimeout(slot.timer);
      slot.conn = null; // the transfer owns it now (and may hand it to TLS)
      return conn;
    }
    if (req.endpoint.kind !== "active") throw new SlaveError("bad_request", "Missing endpoint");
    const { host, port } = req.endpoint;
    try {
      return await Deno.connect({
        hostname: host,
        port,
        transport: "tcp",
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.#connectTimeoutMs)]),
      });
    } catch (e) {
      if (signal.aborted) throw abortedError(req.xfer);
      const why = e instanceof Error ? e.message : String(e);
      throw new SlaveError("data_connection", `Cannot connect to ${host}:${port}: ${why}`);
    }
  }

  /** Runs the TLS handshake `req.tls` asks for (nothing for "none"). */
  async #secure(
    req: Pick<TransferReq, "xfer" | "tls">,
    data: DataLink,
    signal: AbortSignal,
  ): Promise<void> {
    if (req.tls === "none") return;
    const tls = this.#tls!; // checked in transfer()
    const common = {
      signal,
      handshakeTimeoutMs: this.#handshakeTimeoutMs,
      ...(tls.engine ? { engine: tls.engine } : {}),
    };
    try {
      data.tls = req.tls === "server"
        ? await upgradeToTlsServer(data.plain, {
          cert: tls.cert,
          key: tls.key,
          ...(this.#ticketKeys ? { ticketKeys: this.#ticketKeys } : {}),
          issueTickets: false,
          ...common,
        })
        // Secure FXP: the peer is another FTP server, usually with a self-signed certificate.
        : await connectTlsClient(data.plain, { insecure: true, ...common });
    } catch (e) {
      if (signal.aborted) throw abortedError(req.xfer);
      const why = e instanceof TlsHandshakeError
        ? e.message
        : `TLS setup failed: ${e instanceof Error ? e.message : String(e)}`;
      throw new SlaveError(
        "data_connection",
        `Data connection (TLS ${req.tls}): ${why}`,
        { cause: e },
      );
    }
  }

  async #send(
    req: TransferReq,
    slot: PassiveSlot | null,
    signal: AbortSignal,
  ): Promise<TransferResult> {
    if (req.text !== undefined) return await this.#sendText(req, req.text, slot, signal);
    const real = await this.#storage.resolve(req.path);
    const opened = await openRegularFile(real, req.path);
    using file = opened.file;
    if (req.offset > opened.size) {
      throw new SlaveError(
        "bad_request",
        `Offset ${req.offset} is beyond the end of "${req.path}" (${opened.size} bytes)`,
      );
    }
    const mtime = opened.mtime;
    using data = new DataLink(signal, await this.#dataConn(req, slot, signal));
    await this.#secure(req, data, signal);
    const started = performance.now();
    const range = { offset: req.offset, length: opened.size - req.offset, realPath: real };
    const { bytes, crc, path } = await this.#engine.sendFile(data, file, range, {
      signal,
      readError: (e) => signal.aborted ? abortedError(req.xfer) : toSlaveError(e, "io", req.path),
      writeError: (e) => signal.aborted ? abortedError(req.xfer) : dataError(e),
      progress: this.#progress(req.xfer),
    });
    this.#logEngine(req, path);
    await endSend(data, req.xfer, signal);
    return {
      bytes,
      size: opened.size,
      crc32: crc ?? 0,
      crcWhole: crc !== null && req.offset === 0 && bytes === opened.size,
      ms: Math.round(performance.now() - started),
      mtime,
      ...data.result(),
    };
  }

  /**
   * The data connection of `req` (passive `slot` or active connect), with the TLS handshake it
   * asks for done; the caller owns the result.
   */
  async #openData(
    req: Pick<TransferReq, "xfer" | "endpoint" | "tls">,
    slot: PassiveSlot | null,
    signal: AbortSignal,
  ): Promise<DataLink> {
    const data = new DataLink(signal, await this.#dataConn(req, slot, signal));
    try {
      await this.#secure(req, data, signal);
      return data;
    } catch (e) {
      data[Symbol.dispose]();
      throw e;
    }
  }

  /**
   * A sibling send: streams the file the holder sends to `sourceSlot` out to the client's data
   * connection as it arrives (see `REQUESTS.transfer.source`), and with `keep` writes it under
   * the copy temporary name too, renamed into place once size and CRC32 match.
   */
  async #sendFromSibling(
    req: TransferReq,
    source: SiblingSource,
    slot: PassiveSlot | null,
    sourceSlot: PassiveSlot,
    signal: AbortSignal,
  ): Promise<TransferResult> {
    const expected = source.size - req.offset;
    // Both connections at once: the holder may well connect before the client.
    const opened = await Promise.allSettled([
      this.#openData(req, slot, signal),
      this.#openData(
        { xfer: req.xfer, endpoint: { kind: "passive" }, tls: source.tls },
        sourceSlot,
        signal,
      ),
    ]);
    const [clientSide, holderSide] = opened;
    if (clientSide.status === "rejected" || holderSide.status === "rejected") {
      for (const o of opened) if (o.status === "fulfilled") o.value[Symbol.dispose]();
      const failed = clientSide.status === "rejected" ? clientSide : holderSide;
      throw (failed as PromiseRejectedResult).reason;
    }
    using client = clientSide.value;
    using holder = holderSide.value;
    await using copy = source.keep ? await this.#keptCopy(req.path, source.xfer) : null;
    const started = performance.now();
    const holderError = (e: unknown) =>
      signal.aborted
        ? abortedError(req.xfer)
        : e instanceof SlaveError
        ? e
        : new SlaveError("data_connection", `Holder connection failed: ${errorText(e)}`, {
          cause: e,
        });
    const { bytes, crc, path } = await relayStream(holder, client, {
      signal,
      readError: holderError,
      writeError: (e) => signal.aborted ? abortedError(req.xfer) : dataError(e),
      progress: this.#progress(req.xfer),
    }, {
      limit: expected,
      tooLong: (n) =>
        new SlaveError(
          "mismatch",
          `The holder sent more than the ${expected} bytes of "${req.path}" from offset ${req.offset} (${n})`,
        ),
      ...(copy ? { tee: (chunk: Uint8Array) => copy.write(chunk) } : {}),
    });
    this.#logSibling(req, source, path);
    if (signal.aborted) throw abortedError(req.xfer);
    if (bytes !== expected) {
      throw new SlaveError(
        "data_connection",
        `The holder's connection ended after ${bytes} of the ${expected} bytes of "${req.path}"`,
      );
    }
    if (req.offset === 0 && source.crc32 !== null && crc !== source.crc32) {
      throw new SlaveError(
        "mismatch",
        `"${req.path}" arrived from the holder with CRC32 ${hex(crc)}, expected ${
          hex(source.crc32)
        }`,
      );
    }
    await endSend(client, req.xfer, signal);
    holder.finish();
    let kept = false;
    if (copy?.complete()) {
      // Size and CRC32 were checked above; #placeCopy checks them again before the rename.
      try {
        await this.#placeCopy(req.path, copy.temp, { size: source.size, crc32: source.crc32! }, {
          size: bytes,
          crc,
        });
        copy.placed();
        kept = true;
      } catch (e) {
        this.#log.warn("Copy of {path} from the holder not kept: {error}", {
          path: req.path,
          error: errorText(e),
        });
      }
    }
    return {
      bytes,
      size: source.size,
      crc32: crc ?? 0,
      crcWhole: crc !== null && req.offset === 0 && bytes === source.size,
      ms: Math.round(performance.now() - started),
      mtime: Date.now(),
      ...client.result(),
      ...(source.keep ? { kept } : {}),
    };
  }

  /**
   * Opens the file a sibling send with `keep` writes its copy of `vpath` to (see `KeptCopy`), or
   * null when it cannot be created: the client's transfer goes on without a copy.
   */
  async #keptCopy(vpath: string, xfer: string): Promise<KeptCopy | null> {
    try {
      const temp = await this.#storage.prepareUpload(copyTempPath(vpath, xfer));
      return new KeptCopy(
        vpath,
        temp,
        await Deno.open(temp, { write: true, create: true, truncate: true }),
      );
    } catch (e) {
      this.#log.warn("No copy of {path} kept from the holder: {error}", {
        path: vpath,
        error: errorText(e),
      });
      return null;
    }
  }

  /** Sends text the master generated (a listing) over the data connection. */
  async #sendText(
    req: TransferReq,
    text: string,
    slot: PassiveSlot | null,
    signal: AbortSignal,
  ): Promise<TransferResult> {
    const bytes = new TextEncoder().encode(text);
    using data = new DataLink(signal, await this.#dataConn(req, slot, signal));
    await this.#secure(req, data, signal);
    const started = performance.now();
    try {
      await writeAll(data.conn, bytes);
      if (data.tls) await data.tls.closeWrite();
    } catch (e) {
      throw signal.aborted ? abortedError(req.xfer) : dataError(e);
    }
    if (signal.aborted) throw abortedError(req.xfer);
    data.finish();
    return {
      bytes: bytes.length,
      size: bytes.length,
      crc32: crc32(bytes),
      crcWhole: true,
      ms: Math.round(performance.now() - started),
      mtime: Date.now(),
      ...data.result(),
    };
  }

  async #receive(
    req: TransferReq,
    slot: PassiveSlot | null,
    signal: AbortSignal,
  ): Promise<TransferResult> {
    const real = await this.#storage.resolve(req.path);
    const before = await statOrNull(real, req.path);
    if (before !== null && !before.isFile) {
      throw new SlaveError("not_a_file", `Not a file: "${req.path}"`);
    }
    const verify = req.verify;
    const keep = verify?.keep;
    if (verify !== undefined && (req.append || (req.offset !== 0 && keep === undefined))) {
      throw new SlaveError(
        "bad_request",
        "A verified copy is of the whole file, or continues a kept one",
      );
    }
    // A kept copy (`verify.keep`) continues what an earlier copy of that id left.
    const has = keep === undefined
      ? before?.size ?? 0
      : this.#kept.has(keep)
      ? (await statOrNull(this.#kept.get(keep)!, req.path))?.size ?? 0
      : 0;
    if (!req.append && req.offset > has) {
      throw new SlaveError(
        "bad_request",
        `Offset ${req.offset} is beyond the end of "${req.path}" (${has} bytes${
          keep === undefined ? "" : " kept"
        })`,
      );
    }
    using data = new DataLink(signal, await this.#dataConn(req, slot, signal));
    await this.#secure(req, data, signal);
    // A copy from another slave arrives under a temporary name (see `#placeCopy`), and so does
    // an upload that starts a file: it is renamed into place at its end, so a crash never leaves
    // a short file under the real name, and an overwritten file stays whole until then. Only a
    // resume (APPE, REST) of an existing file writes in place (the master marks it incomplete).
    const inPlace = verify === undefined && before !== null && (req.append || req.offset > 0);
    const temp = inPlace
      ? null
      : verify
      ? copyTempPath(req.path, keep ?? req.xfer)
      : uploadTempPath(
        req.path,
        req.xfer,
      );
    const target = await this.#storage.prepareUpload(temp ?? req.path);
    let file: Deno.FsFile;
    let start: number;
    try {
      if (req.append) {
        file = await Deno.open(target, { write: true, create: true, append: true });
        start = (await file.stat()).size;
      } else if (req.offset > 0) {
        file = await Deno.open(target, { write: true, create: true });
        await file.truncate(req.offset);
        await file.seek(req.offset, Deno.SeekMode.Start);
        start = req.offset;
      } else {
        file = await Deno.open(target, { write: true, create: true, truncate: true });
        start = 0;
      }
    } catch (e) {
      throw toSlaveError(e, "io", req.path);
    }
    const report = this.#progress(req.xfer);
    const started = performance.now();
    let moved = 0;
    try {
      const at = { offset: start, realPath: target };
      const { bytes, crc, path } = await this.#engine.receiveFile(data, file, at, {
        signal,
        readError: (e) => signal.aborted ? abortedError(req.xfer) : dataError(e),
        writeError: (e) => toSlaveError(e, "io", req.path),
        progress: (n) => {
          moved = n;
          report(n);
        },
      });
      this.#logEngine(req, path);
      if (signal.aborted) throw abortedError(req.xfer);
      if (data.tls?.truncated) {
        // Like vsftpd's default (strict_ssl_read_eof=NO): many clients end uploads this way.
        this.#log.debug("Upload {xfer} ended without TLS close_notify; keeping the data", {
          xfer: req.xfer,
          path: req.path,
        });
      }
      data.finish();
      const info = await file.stat();
      if (verify) {
        if (keep !== undefined && info.size < verify.size) {
          throw new SlaveError(
            "data_connection",
            `Copy of "${req.path}" ended after ${info.size} of ${verify.size} bytes`,
          );
        }
        // A continued copy: the CRC32 of the whole file, read back from disk.
        const whole = start === 0 ? crc : (await this.#storage.checksum(temp!, signal)).crc32;
        await this.#placeCopy(req.path, target, verify, { size: info.size, crc: whole });
        if (keep !== undefined) this.#kept.delete(keep);
      } else if (temp !== null) await this.#place(req.path, target);
      return {
        bytes,
        size: info.size,
        crc32: crc ?? 0,
        crcWhole: crc !== null && start === 0,
        ms: Math.round(performance.now() - started),
        mtime: info.mtime?.getTime() ?? 0,
        ...data.result(),
      };
    } catch (e) {
      const err = toSlaveError(e, "io", req.path);
      const partial = await partialInfo(file, moved);
      if (
        keep !== undefined && err.code !== "mismatch" && !this.#closed && partial?.size &&
        this.#kept.size < MAX_KEPT_COPIES
      ) {
        // A copy that may be continued (`verify.keep`): what arrived stays until the master
        // continues it or drops it (`abort{xfer: keep}`), or the link ends.
        this.#kept.set(keep, target);
        err.partial = partial;
      } else if (verify || (temp !== null && (this.#closed || !partial?.size))) {
        if (keep !== undefined) this.#kept.delete(keep);
        // A copy leaves nothing behind; nor does an upload the master will not hear about (the
        // link is gone), or one that brought nothing (what was there stays).
        await Deno.remove(target).catch(() => {});
      } else {
        // The client's abort (or a failed write) keeps what arrived as a resumable partial,
        // which the master records with its real size.
        if (temp !== null) await this.#place(req.path, target).catch(() => {});
        err.partial = partial;
      }
      throw err;
    } finally {
      file.close();
    }
  }

  /** Renames an upload that arrived at `temp` (a real path) to `vpath`, replacing what is there. */
  async #place(vpath: string, temp: string): Promise<void> {
    const final = await this.#storage.prepareUpload(vpath);
    try {
      await Deno.rename(temp, final);
    } catch (e) {
      throw toSlaveError(e, "io", vpath);
    }
  }

  /**
   * Renames a copy that arrived at `temp` to `vpath` when it has the expected size and CRC32;
   * throws "mismatch" otherwise (the caller removes `temp`).
   */
  async #placeCopy(
    vpath: string,
    temp: string,
    want: { size: number; crc32: number },
    got: { size: number; crc: number | null },
  ): Promise<void> {
    if (got.size !== want.size || got.crc !== want.crc32) {
      throw new SlaveError(
        "mismatch",
        `Copy of "${vpath}" arrived with ${got.size} bytes, CRC32 ${hex(got.crc)}; ` +
          `expected ${want.size} bytes, CRC32 ${hex(want.crc32)}`,
      );
    }
    await this.#place(vpath, temp);
  }

  /**
   * Logs which engine (and path through it) moved the bytes of `req`; with TLS, which TLS engine
   * (kernel TLS is not used: see slave/zero_copy.ts).
   */
  #logEngine(req: TransferReq, path: string): void {
    const tls = req.tls === "none" ? "" : ` over TLS (${this.#tls?.engine?.version ?? "node:tls"})`;
    this.#log.debug(`Transfer {xfer} ({dir} {path}) moved by the {engine} engine: {how}${tls}`, {
      xfer: req.xfer,
      dir: req.dir,
      path: req.path,
      engine: this.#engine.name,
      how: path,
    });
  }

  /** Logs how a sibling send moved its bytes (the native loop, whatever the engine). */
  #logSibling(req: TransferReq, source: SiblingSource, path: string): void {
    const note = this.#engine.name === "native"
      ? ""
      : ` (the ${this.#engine.name} engine has no socket-to-socket path: native loop)`;
    this.#log.debug(
      `Transfer {xfer} (send {path} fetched from holder {peer}) moved by the {how} loop${note}`,
      { xfer: req.xfer, path: req.path, peer: source.peer, how: path },
    );
  }

  /** A throttled progress reporter for one transfer. */
  #progress(xfer: string): (bytes: number) => void {
    let last = performance.now();
    return (bytes) => {
      const now = performance.now();
      if (now - last < this.#progressIntervalMs) return;
      last = now;
      this.#onProgress(xfer, bytes);
    };
  }
}

/**
 * The copy a sibling send with `keep` writes besides streaming, under the copy temporary name. A
 * failed write ends the copy, not the client's transfer. Disposing it closes the file and
 * removes the temporary one unless it was placed.
 */
class KeptCopy implements AsyncDisposable {
  /** The real path of the temporary file. */
  readonly temp: string;
  #vpath: string;
  #file: Deno.FsFile | null;
  #failed = false;
  #placed = false;

  constructor(vpath: string, temp: string, file: Deno.FsFile) {
    this.#vpath = vpath;
    this.temp = temp;
    this.#file = file;
  }

  /** Appends `chunk` (synchronously: it is written before the next chunk is relayed). */
  write(chunk: Uint8Array): void {
    if (this.#file === null) return;
    try {
      writeAllSync(this.#file, chunk);
    } catch (e) {
      getLogger(["drftpd", "slave"]).warn("Copy of {path} from the holder stopped: {error}", {
        path: this.#vpath,
        error: errorText(e),
      });
      this.#failed = true;
      this.#close();
    }
  }

  /** Closes the file; true when every chunk was written. */
  complete(): boolean {
    this.#close();
    return !this.#failed;
  }

  /** The temporary file was renamed into place: nothing to remove. */
  placed(): void {
    this.#placed = true;
  }

  #close(): void {
    try {
      this.#file?.close();
    } catch {
      // closed
    }
    this.#file = null;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#close();
    if (!this.#placed) await Deno.remove(this.temp).catch(() => {});
  }
}

/** Throws "bad_request" unless `req` is a send its `source` can serve. */
function checkSiblingSend(req: TransferReq, source: SiblingSource): void {
  const why = req.dir !== "send"
    ? "only a send can take its bytes from another slave"
    : req.text !== undefined
    ? "a listing has no holder"
    : source.xfer === req.xfer
    ? "the holder's listener needs its own transfer id"
    : req.offset > source.size
    ? `offset ${req.offset} is beyond the end of "${req.path}" (${source.size} bytes)`
    : source.keep && (req.offset !== 0 || source.crc32 === null)
    ? "a kept copy needs the whole file and its CRC32"
    : null;
  if (why !== null) throw new SlaveError("bad_request", `Invalid sibling send: ${why}`);
}

function hex(n: number | null): string {
  return n === null ? "unknown" : n.toString(16).padStart(8, "0");
}

/** What a failed receive left on disk, or undefined if even that cannot be read. */
async function partialInfo(file: Deno.FsFile, bytes: number): Promise<PartialInfo | undefined> {
  try {
    const info = await file.stat();
    return { size: info.size, mtime: info.mtime?.getTime() ?? 0, bytes };
  } catch {
    return undefined;
  }
}

async function statOrNull(real: string, vpath: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(real);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw toSlaveError(e, "io", vpath);
  }
}

/**
 * The data connection of one transfer: the plain socket and, with TLS, the TLS connection over
 * it. An abort of `signal` drops it at once (no close_notify); so does disposing it unless
 * `finish()` ended it normally first. It is the `DataSocket` a data engine moves bytes over: a
 * slave-to-slave copy that opens its own connection wraps it in one and calls the engine.
 */
export class DataLink implements DataSocket, Disposable {
  readonly plain: Deno.TcpConn;
  /** The TLS connection over `plain`, once the handshake is done; it owns `plain` then. */
  tls: TlsByteConn | null = null;
  #signal: AbortSignal;
  #finished = false;
  #dropped = false;
  #dropHooks = new Set<() => void>();
  #onAbort = () => this.#drop();

  constructor(signal: AbortSignal, plain: Deno.TcpConn) {
    this.plain = plain;
    this.#signal = signal;
    if (signal.aborted) this.#drop();
    else signal.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** Where the file bytes go: the TLS connection, or the plain one. */
  get conn(): ByteConn {
    return this.tls ?? this.plain;
  }

  /** Whether TLS runs over `plain`. */
  get secure(): boolean {
    return this.tls !== null;
  }

  /** Runs `fn` when the connection is dropped, before the socket closes. */
  onDrop(fn: () => void): () => void {
    this.#dropHooks.add(fn);
    return () => this.#dropHooks.delete(fn);
  }

  /** `tls` for the TransferResult, when there was TLS. */
  result(): Pick<TransferResult, "tls"> {
    if (this.tls === null) return {};
    return { tls: { protocol: this.tls.info.protocol, resumed: this.tls.info.resumed } };
  }

  /**
   * Ends the connection normally: TLS sends close_notify and FIN and lingers in the background
   * until the peer closes (see `TlsByteConn.close`); plain TCP closes.
   */
  finish(): void {
    this.#finished = true;
    if (this.tls) this.tls.close();
    else closeQuietly(this.plain);
  }

  #drop(): void {
    if (this.#dropped) return;
    this.#dropped = true;
    for (const fn of this.#dropHooks) fn();
    if (this.tls) this.tls.abort();
    else closeQuietly(this.plain);
  }

  [Symbol.dispose](): void {
    this.#signal.removeEventListener("abort", this.#onAbort);
    if (!this.#finished) this.#drop();
  }
}

/**
 * Ends a send's data connection normally: with TLS, every byte is on the wire with close_notify
 * and FIN before the master replies 226. Throws "aborted" when `signal` aborted meanwhile.
 */
async function endSend(data: DataLink, xfer: string, signal: AbortSignal): Promise<void> {
  if (data.tls) {
    try {
      await data.tls.closeWrite();
    } catch (e) {
      throw signal.aborted ? abortedError(xfer) : dataError(e);
    }
  }
  if (signal.aborted) throw abortedError(xfer);
  data.finish();
}

function abortedError(xfer: string): SlaveError {
  return new SlaveError("aborted", `Transfer "${xfer}" aborted`);
}

function dataError(e: unknown): SlaveError {
  const why = e instanceof Error ? e.message : String(e);
  return new SlaveError("data_connection", `Data connection failed: ${why}`, { cause: e });
}

/** The ports from..to (inclusive) in random order. */
function shuffledRange(from: number, to: number): number[] {
  const ports: number[] = [];
  for (let p = from; p <= to; p++) ports.push(p);
  for (let i = ports.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [ports[i], ports[j]] = [ports[j]!, ports[i]!];
  }
  return ports;
}
