/**
 * TLS building blocks for FTPS: upgrading an accepted plain TCP connection to a TLS server
 * (`AUTH TLS`, passive and active data connections), acting as a TLS client on a data connection
 * (`SSCN`/`CPSV`), and a self-signed certificate for first start.
 *
 * Two TLS engines sit behind one `TlsByteConn` (which implements `ByteConn`):
 *
 * - **node:tls** (default, no extra permission). Deno has no server-side `startTls`, so the
 *   server side runs `node:tls` over a small `Duplex` that reads and writes the `Deno.Conn`.
 *   Deno 2.9.6 implements `node:tls` with rustls: sessions resume between all `node:tls` sockets
 *   of one process, but `ticketKeys` is validated and then ignored, so two processes (master and
 *   slave) never resume each other's sessions.
 * - **OpenSSL** through FFI (`loadOpenSsl()`, needs `--allow-ffi` and `libssl.so.3`). It honours
 *   shared session-ticket keys, so a data connection on a slave resumes the TLS session of the
 *   control connection on the master (TLS 1.2 and 1.3), and a slave can see that it did
 *   (`info.resumed`), like vsftpd's `require_ssl_reuse`.
 *
 * Closing: `closeWrite()` flushes and sends close_notify + FIN (await it before replying 226 to
 * a download); `close()` does that and lingers until the peer closes (RST-safe); `abort()` drops
 * the connection at once (ABOR). A peer that ends without close_notify reads as EOF with
 * `truncated` set.
 *
 * A certificate with `CA:TRUE` is refused as an end-entity certificate by rustls clients
 * (`Deno.connectTls`, `Deno.startTls`); `ensureSelfSignedCert` writes `CA:FALSE`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  randomBytes,
  sign,
  X509Certificate,
} from "node:crypto";
import { isIP } from "node:net";
import { Duplex } from "node:stream";
import * as tls from "node:tls";
import type { ByteConn } from "./link.ts";
import { concat, writeAll } from "./bytes.ts";
import { closeQuietly } from "./net.ts";

/** A plain connection that TLS can run over; `Deno.Conn` fits. */
export interface PlainConn extends ByteConn {
  /** Half-closes the write side (TCP FIN), if supported. */
  closeWrite?(): Promise<void>;
}

/** What the handshake settled on. */
export interface TlsInfo {
  /** Protocol version, e.g. `"TLSv1.3"`. */
  protocol: string;
  /** Cipher suite name as the engine reports it. */
  cipher: string;
  /** Whether the handshake resumed an earlier session. */
  resumed: boolean;
  /** Session id in hex (OpenSSL engine only). */
  sessionId?: string;
  /**
   * The peer's certificate as `certFingerprint` formats it (`"sha256:<hex>"` of the DER leaf),
   * when the peer sent one (always for a server; for a client only with client certificates).
   * Set whether or not the certificate was verified: pin it yourself with `insecure`.
   */
  peerFingerprint?: string;
}

/** A TLS connection usable wherever a `ByteConn` is. */
export interface TlsByteConn extends ByteConn, Disposable, AsyncDisposable {
  /** Negotiated protocol, cipher and whether the session was resumed. */
  readonly info: TlsInfo;
  /** The peer's plaintext as a stream (shares the read side with `read()`: use one or the other). */
  readonly readable: ReadableStream<Uint8Array>;
  /** Plaintext to the peer; closing it calls `closeWrite()`, aborting it `abort()`. */
  readonly writable: WritableStream<Uint8Array>;
  /** Settles when the underlying connection is closed. Never rejects. */
  readonly closed: Promise<void>;
  /**
   * True when the peer's stream ended with a bare TCP FIN, without TLS close_notify (a client
   * that does not shut TLS down, or a truncation attack). `read()` still returns null then, like
   * vsftpd's default `strict_ssl_read_eof=NO`; a strict server treats the upload as interrupted.
   */
  readonly truncated: boolean;
  /**
   * Reads plaintext into `p`. Resolves null when the peer ended (close_notify or FIN; see
   * `truncated`) and after `close()`/`abort()`. Rejects on a reset or a TLS error.
   */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes all of `p`; resolves once TLS has taken it (so `p` may be reused) and returns its length. */
  write(p: Uint8Array): Promise<number>;
  /**
   * Sends close_notify and FIN once everything written is flushed to the socket; resolves then.
   * Reading goes on until the peer ends. Idempotent. Rejects if the connection failed.
   */
  closeWrite(): Promise<void>;
  /**
   * The TLS session to offer on a later connection (`connectTlsClient` `session`), or undefined.
   * With TLS 1.3 it exists only once the server's ticket arrived, i.e. after some reading.
   * The node:tls engine returns an opaque token only that engine understands, in-process.
   */
  getSession(): Uint8Array | undefined;
  /**
   * Closes gracefully in the background: flushes, sends close_notify and FIN, discards input
   * until the peer closes too, then closes the socket (at most `CLOSE_GRACE_MS` later; await
   * `closed` to know). Idempotent; pending and later `read()`s resolve null.
   */
  close(): void;
  /** Closes the socket at once, without close_notify (aborted transfers). Idempotent. */
  abort(): void;
}

/** Options of `upgradeToTlsServer`. */
export interface TlsServerOptions {
  /** PEM certificate (chain). */
  cert: string;
  /** PEM private key. */
  key: string;
  /**
   * 48-byte session-ticket secret shared by master and slaves. The OpenSSL engine derives its
   * ticket keys from it (HKDF-SHA256), so every process with the same secret resumes the others'
   * sessions. The node:tls engine ignores it (see the module documentation).
   */
  ticketKeys?: Uint8Array;
  /** Lowest protocol accepted; default `"TLSv1.2"`. */
  minVersion?: "TLSv1.2" | "TLSv1.3";
  /** Abort the handshake after this many milliseconds; default 30 000. */
  handshakeTimeoutMs?: number;
  /** Aborts a handshake in progress (the connection is closed). */
  signal?: AbortSignal;
  /** TLS engine: the one `loadOpenSsl()` returned, or node:tls when absent. */
  engine?: OpenSsl;
  /**
   * Issue TLS 1.3 session tickets after the handshake (default true). Data connections turn it
   * off: a client that uploads and closes without reading the unread tickets makes its kernel
   * send a TCP reset, which discards the end of the upload on our side. (OpenSSL engine only.)
   */
  issueTickets?: boolean;
}

/** Options of `connectTlsClient`. */
export interface TlsClientOptions {
  /** SNI and the name checked against the certificate; default: the hostname, if not an IP. */
  servername?: string;
  /** Trusted PEM certificates; default: the system store. */
  caCerts?: string[];
  /** Skip certificate verification (FXP peers with self-signed certificates). */
  insecure?: boolean;
  /** A session from `TlsByteConn.getSession()` of the same engine, to resume. */
  session?: Uint8Array;
  /** Lowest protocol accepted; default `"TLSv1.2"`. */
  minVersion?: "TLSv1.2" | "TLSv1.3";
  /** Abort the handshake after this many milliseconds; default 30 000. */
  handshakeTimeoutMs?: number;
  /** Aborts a handshake in progress (the connection is closed). */
  signal?: AbortSignal;
  /** TLS engine: the one `loadOpenSsl()` returned, or node:tls when absent. */
  engine?: OpenSsl;
}

/** Where `connectTlsClient` dials when it is not given a connection. */
export interface TlsClientTarget {
  /** Host name or IP address. */
  hostname: string;
  /** TCP port. */
  port: number;
}

/** A certificate and key in PEM, with the certificate's fingerprint. */
export interface CertPair {
  /** PEM certificate. */
  cert: string;
  /** PEM private key (PKCS#8). */
  key: string;
  /** `"sha256:"` + lowercase hex SHA-256 of the DER certificate. */
  fingerprint: string;
}

/** Raised when a TLS handshake fails, times out or is aborted; the connection is closed. */
export class TlsHandshakeError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TlsHandshakeError";
  }
}

/** How long `close()` lingers (flushing, then waiting for the peer to close) before it closes anyway. */
export const CLOSE_GRACE_MS = 5000;

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;
/** Bytes of decrypted input queued before reading from the socket stops. */
const READ_HIGH_WATER = 256 * 1024;
/** Incoming bytes go into slabs of this size; each chunk handed on is a view (no copy). */
const SLAB_BYTES = 256 * 1024;
/** Below this much room left in a slab, a new slab is taken (a TLS record is ≤ 16 KiB). */
const SLAB_MIN_ROOM = 32 * 1024;
/** Plaintext handed to OpenSSL per SSL_write, so the ciphertext buffer stays small. */
const OPENSSL_WRITE_SLICE = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// The engine-neutral connection

/** Where a transport delivers what it decrypted. */
interface TransportSink {
  data(chunk: Uint8Array): void;
  /** The peer ended; `truncated` when no close_notify came before the FIN. */
  end(truncated: boolean): void;
  error(err: Error): void;
}

/** One engine's TLS connection after the handshake. */
interface Transport {
  readonly info: TlsInfo;
  /** Settles when the plain connection has been closed. */
  readonly closed: Promise<void>;
  /** Starts delivering plaintext and events to `sink`. */
  start(sink: TransportSink): void;
  pauseReading(): void;
  resumeReading(): void;
  /** Encrypts and sends `p`; resolves when `p` may be reused. */
  write(p: Uint8Array): Promise<void>;
  /** Sends close_notify and FIN after everything written; resolves once flushed. */
  shutdownWrite(): Promise<void>;
  /** Closes the plain connection now and frees the engine state. Idempotent. */
  destroy(): void;
  getSession(): Uint8Array | undefined;
}

/** `TlsByteConn` over a transport: the plaintext queue, backpressure, streams and closing. */
class TlsConn implements TlsByteConn, TransportSink {
  #t: Transport;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #truncated = false;
  #error: Error | null = null;
  #waiter: (() => void) | null = null;
  #closing = false;
  #peerDone = Promise.withResolvers<void>();
  #writeEnded: Promise<void> | null = null;
  #readable: ReadableStream<Uint8Array> | null = null;
  #writable: WritableStream<Uint8Array> | null = null;
  readonly info: TlsInfo;
  readonly closed: Promise<void>;

  constructor(transport: Transport) {
    this.#t = transport;
    this.info = transport.info;
    this.closed = transport.closed;
    transport.start(this);
  }

  // TransportSink

  data(chunk: Uint8Array): void {
    if (this.#closing) return; // draining after close()
    this.#queue.push(chunk);
    this.#queued += chunk.length;
    if (this.#queued >= READ_HIGH_WATER) this.#t.pauseReading();
    this.#wake();
  }

  end(truncated: boolean): void {
    if (!this.#ended) this.#truncated = truncated && !this.#closing;
    this.#ended = true;
    this.#peerDone.resolve();
    this.#wake();
  }

  error(err: Error): void {
    this.#error ??= err;
    this.#peerDone.resolve();
    this.#wake();
  }

  // TlsByteConn

  get truncated(): boolean {
    return this.#truncated;
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  /** The next chunk of plaintext (a view, not a copy), or null at the end. */
  async #next(): Promise<Uint8Array | null> {
    while (this.#queue.length === 0) {
      if (this.#closing) return null;
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#waiter = resolve);
    }
    const chunk = this.#queue.shift()!;
    this.#queued -= chunk.length;
    if (this.#queued < READ_HIGH_WATER) this.#t.resumeReading();
    return chunk;
  }

  async read(p: Uint8Array): Promise<number | null> {
    if (p.length === 0) return 0;
    const chunk = await this.#next();
    if (chunk === null) return null;
    if (chunk.length > p.length) {
      p.set(chunk.subarray(0, p.length));
      const rest = chunk.subarray(p.length);
      this.#queue.unshift(rest);
      this.#queued += rest.length;
      return p.length;
    }
    p.set(chunk);
    return chunk.length;
  }

  async write(p: Uint8Array): Promise<number> {
    if (this.#closing || this.#writeEnded) {
      throw new Deno.errors.BadResource("TLS connection is closed for writing");
    }
    if (this.#error) throw this.#error;
    await this.#t.write(p);
    return p.length;
  }

  closeWrite(): Promise<void> {
    this.#writeEnded ??= this.#t.shutdownWrite().then(() => {
      if (this.#error) throw this.#error;
    });
    return this.#writeEnded;
  }

  getSession(): Uint8Array | undefined {
    return this.#t.getSession();
  }

  get readable(): ReadableStream<Uint8Array> {
    this.#readable ??= new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const chunk = await this.#next();
        if (chunk === null) controller.close();
        else controller.enqueue(chunk);
      },
      cancel: () => this.abort(),
    }, { highWaterMark: 0 });
    return this.#readable;
  }

  get writable(): WritableStream<Uint8Array> {
    this.#writable ??= new WritableStream<Uint8Array>({
      write: async (chunk) => {
        await this.write(chunk);
      },
      close: () => this.closeWrite(),
      abort: () => this.abort(),
    });
    return this.#writable;
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#queue = [];
    this.#queued = 0;
    this.#t.resumeReading();
    this.#wake();
    const timer = setTimeout(() => this.abort(), CLOSE_GRACE_MS);
    void this.closed.then(() => clearTimeout(timer));
    // Lingering close: send close_notify and FIN, then discard input until the peer's end.
    // Closing a socket that still receives data (late TLS 1.3 tickets, a close_notify reply)
    // makes the kernel send RST, and an RST can destroy data the peer has not read yet.
    void this.closeWrite().catch(() => {}).then(() => this.#peerDone.promise).then(() =>
      this.abort()
    );
  }

  abort(): void {
    this.#closing = true;
    this.#wake();
    this.#t.destroy();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.closed;
  }
}

/**
 * Settles like `work`, but rejects with `TlsHandshakeError` (after calling `cancel`, which must
 * close the connection) when `work` fails, `timeoutMs` passes or `signal` aborts.
 */
function handshakeDeadline<T>(
  work: (fail: (err: unknown) => void) => Promise<T>,
  cancel: () => void,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const finish = () => {
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const fail = (err: unknown) => {
      if (settled) return;
      finish();
      cancel();
      const message = err instanceof Error ? err.message : String(err);
      reject(new TlsHandshakeError(`TLS handshake failed: ${message}`, { cause: err }));
    };
    const onAbort = () => fail(signal?.reason ?? new Error("aborted"));
    const timer = setTimeout(() => fail(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    work(fail).then((value) => {
      if (settled) return;
      finish();
      resolve(value);
    }, fail);
  });
}

// ---------------------------------------------------------------------------------------------
// node:tls engine

/**
 * A `node:stream` Duplex over a plain connection: reads in a loop while node wants data
 * (into slabs, pushing views without copying), writes through `conn.write`.
 */
class ConnDuplex extends Duplex {
  #conn: PlainConn;
  #pumping = false;
  #slab = new Uint8Array(0);
  #off = 0;
  #closed = false;
  #hold: PromiseWithResolvers<void> | null = null;
  #resolveClosed!: () => void;
  /** Whether the plain connection's read side reached its end (TCP FIN). */
  rawEnded = false;
  /** Resolves when the plain connection has been closed. */
  readonly connClosed: Promise<void>;

  constructor(conn: PlainConn) {
    super({ allowHalfOpen: true, decodeStrings: false });
    this.#conn = conn;
    this.connClosed = new Promise((resolve) => this.#resolveClosed = resolve);
  }

  override _read(): void {
    if (!this.#pumping) void this.#pump();
  }

  /**
   * Stops reading the plain connection until `resumeReading()`: backpressure from the plaintext
   * consumer. (Pausing the TLSSocket instead loses close_notify in Deno 2.9.6.)
   */
  pauseReading(): void {
    this.#hold ??= Promise.withResolvers<void>();
  }

  /** Undoes `pauseReading()`. */
  resumeReading(): void {
    const hold = this.#hold;
    this.#hold = null;
    hold?.resolve();
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (!this.#closed) {
        if (this.#hold) {
          await this.#hold.promise;
          continue;
        }
        if (this.#slab.length - this.#off < SLAB_MIN_ROOM) {
          this.#slab = new Uint8Array(SLAB_BYTES);
          this.#off = 0;
        }
        const n = await this.#conn.read(this.#slab.subarray(this.#off));
        if (n === null) {
          // Let the TLS layer digest what was pushed first, so a close_notify in the last
          // bytes ends the TLS stream before the bare FIN does (see NodeTransport 'end').
          await new Promise((resolve) => setTimeout(resolve, 0));
          this.rawEnded = true;
          this.push(null);
          return;
        }
        const chunk = this.#slab.subarray(this.#off, this.#off + n);
        this.#off += n;
        if (!this.push(chunk)) return;
      }
    } catch (err) {
      if (!this.#closed) this.destroy(err as Error);
    } finally {
      this.#pumping = false;
    }
  }

  override _write(
    chunk: Uint8Array,
    _encoding: string,
    callback: (error?: Error | null) => void,
  ): void {
    writeAll(this.#conn, chunk).then(() => callback(), callback);
  }

  override _writev(
    chunks: { chunk: Uint8Array }[],
    callback: (error?: Error | null) => void,
  ): void {
    // TLS records come out one by one; one write of their concatenation saves syscalls.
    const all = Buffer.concat(chunks.map((c) => c.chunk));
    writeAll(this.#conn, all).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    const closeWrite = this.#conn.closeWrite;
    if (!closeWrite || this.#closed) return callback();
    closeWrite.call(this.#conn).then(() => callback(), () => callback());
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#closeConn();
    callback(err);
  }

  #closeConn(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.resumeReading();
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    this.#resolveClosed();
  }
}

/** A connected `tls.TLSSocket` over a `ConnDuplex`. */
class NodeTransport implements Transport {
  #socket: tls.TLSSocket;
  #duplex: ConnDuplex;
  readonly info: TlsInfo;
  readonly closed: Promise<void>;

  constructor(socket: tls.TLSSocket, duplex: ConnDuplex) {
    this.#socket = socket;
    this.#duplex = duplex;
    this.closed = duplex.connClosed;
    const cipher = socket.getCipher() as { name?: string } | undefined;
    this.info = {
      protocol: socket.getProtocol() ?? "unknown",
      cipher: cipher?.name ?? "unknown",
      resumed: socket.isSessionReused(),
    };
    const raw = (socket.getPeerCertificate(false) as { raw?: Uint8Array } | null)?.raw;
    if (raw && raw.length > 0) this.info.peerFingerprint = derFingerprint(raw);
  }

  start(sink: TransportSink): void {
    const socket = this.#socket;
    const duplex = this.#duplex;
    socket.on("data", (chunk: Uint8Array) => sink.data(chunk));
    // close_notify ends the TLS stream while TCP is still open; a bare FIN ends both at once.
    socket.on("end", () => sink.end(duplex.rawEnded));
    socket.on("error", (err: Error) => sink.error(err));
    // Errors of the plain connection (e.g. a reset) do not all reach the TLS socket.
    duplex.on("error", (err: Error) => sink.error(err));
    socket.on("close", () => sink.end(true)); // ignored when 'end' came first
    // When the plain connection goes away, so does the TLS socket.
    void duplex.connClosed.then(() => socket.destroy());
  }

  pauseReading(): void {
    this.#duplex.pauseReading();
  }

  resumeReading(): void {
    this.#duplex.resumeReading();
  }

  write(p: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#socket.write(p, (err) => err ? reject(err) : resolve());
    });
  }

  shutdownWrite(): Promise<void> {
    // The TLS socket's end() only queues close_notify: it neither waits for the ciphertext to
    // leave the Duplex nor ends the Duplex (no FIN) in Deno 2.9.6. So end the Duplex once the
    // TLS socket has finished, and be done when the Duplex has flushed and sent FIN.
    return new Promise<void>((resolve) => {
      const duplex = this.#duplex;
      if (duplex.destroyed || duplex.writableFinished) return resolve();
      duplex.once("finish", () => resolve());
      duplex.once("close", () => resolve());
      this.#socket.end(() => {
        if (!duplex.destroyed && !duplex.writableEnded) duplex.end();
      });
    });
  }

  destroy(): void {
    this.#socket.destroy();
    this.#duplex.destroy();
  }

  getSession(): Uint8Array | undefined {
    return this.#socket.getSession() ?? undefined;
  }
}

/** Waits for `event` ("secure" on servers, "secureConnect" on clients) on a fresh TLS socket. */
function nodeHandshake(
  socket: tls.TLSSocket,
  duplex: ConnDuplex,
  event: "secure" | "secureConnect",
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<TlsByteConn> {
  const cancel = () => {
    socket.destroy();
    duplex.destroy();
  };
  return handshakeDeadline<TlsByteConn>(
    (fail) =>
      new Promise((resolve) => {
        const onError = (err: Error) => fail(err);
        const onClose = () => fail(new Error("connection closed during the handshake"));
        socket.on("error", onError);
        duplex.on("error", onError);
        socket.on("close", onClose);
        socket.once(event, () => {
          socket.off("error", onError);
          duplex.off("error", onError);
          socket.off("close", onClose);
          // Synchronously, so that no 'data' event can come before the listeners.
          resolve(new TlsConn(new NodeTransport(socket, duplex)));
        });
      }),
    cancel,
    timeoutMs,
    signal,
  );
}

function nodeServer(conn: PlainConn, opts: TlsServerOptions): Promise<TlsByteConn> {
  const duplex = new ConnDuplex(conn);
  const contextOptions: tls.SecureContextOptions = {
    cert: opts.cert,
    key: opts.key,
    minVersion: opts.minVersion ?? "TLSv1.2",
  };
  if (opts.ticketKeys) contextOptions.ticketKeys = Buffer.from(opts.ticketKeys);
  let socket: tls.TLSSocket;
  try {
    const secureContext = tls.createSecureContext(contextOptions);
    socket = new tls.TLSSocket(duplex, { isServer: true, secureContext });
  } catch (err) {
    duplex.destroy();
    return Promise.reject(err);
  }
  return nodeHandshake(
    socket,
    duplex,
    "secure",
    opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    opts.signal,
  );
}

function nodeClient(
  plain: PlainConn,
  host: string | undefined,
  servername: string | undefined,
  opts: TlsClientOptions,
): Promise<TlsByteConn> {
  const duplex = new ConnDuplex(plain);
  const options: tls.ConnectionOptions = {
    socket: duplex,
    rejectUnauthorized: !opts.insecure,
    minVersion: opts.minVersion ?? "TLSv1.2",
  };
  if (servername !== undefined) options.servername = servername;
  if (host !== undefined) options.host = host;
  if (opts.caCerts) options.ca = opts.caCerts;
  if (opts.session) options.session = Buffer.from(opts.session);
  if (opts.insecure) options.checkServerIdentity = () => undefined;
  let socket: tls.TLSSocket;
  try {
    socket = tls.connect(options);
  } catch (err) {
    duplex.destroy();
    return Promise.reject(err);
  }
  return nodeHandshake(
    socket,
    duplex,
    "secureConnect",
    opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    opts.signal,
  );
}

// ---------------------------------------------------------------------------------------------
// OpenSSL engine (libssl through FFI, memory BIOs)

const SSL_SYMBOLS = {
  TLS_server_method: { parameters: [], result: "pointer" },
  TLS_client_method: { parameters: [], result: "pointer" },
  SSL_CTX_new: { parameters: ["pointer"], result: "pointer" },
  SSL_CTX_free: { parameters: ["pointer"], result: "void" },
  SSL_CTX_ctrl: { parameters: ["pointer", "i32", "i64", "pointer"], result: "i64" },
  SSL_CTX_ctrl_buf: {
    name: "SSL_CTX_ctrl",
    parameters: ["pointer", "i32", "i64", "buffer"],
    result: "i64",
  },
  SSL_CTX_set_options: { parameters: ["pointer", "u64"], result: "u64" },
  SSL_CTX_set_timeout: { parameters: ["pointer", "i64"], result: "i64" },
  SSL_CTX_use_certificate: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_CTX_use_PrivateKey: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_CTX_check_private_key: { parameters: ["pointer"], result: "i32" },
  SSL_CTX_set_session_id_context: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  SSL_CTX_set_verify: { parameters: ["pointer", "i32", "pointer"], result: "void" },
  SSL_CTX_get_cert_store: { parameters: ["pointer"], result: "pointer" },
  SSL_CTX_set_default_verify_paths: { parameters: ["pointer"], result: "i32" },
  X509_STORE_add_cert: { parameters: ["pointer", "pointer"], result: "i32" },
  BIO_s_mem: { parameters: [], result: "pointer" },
  BIO_new: { parameters: ["pointer"], result: "pointer" },
  BIO_new_mem_buf: { parameters: ["buffer", "i32"], result: "pointer" },
  BIO_free: { parameters: ["pointer"], result: "i32" },
  BIO_read: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  BIO_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  BIO_ctrl_pending: { parameters: ["pointer"], result: "usize" },
  PEM_read_bio_X509: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "pointer",
  },
  PEM_read_bio_PrivateKey: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "pointer",
  },
  X509_free: { parameters: ["pointer"], result: "void" },
  PEM_write_bio_X509: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_get1_peer_certificate: { parameters: ["pointer"], result: "pointer", optional: true },
  EVP_PKEY_free: { parameters: ["pointer"], result: "void" },
  SSL_new: { parameters: ["pointer"], result: "pointer" },
  SSL_free: { parameters: ["pointer"], result: "void" },
  SSL_set_bio: { parameters: ["pointer", "pointer", "pointer"], result: "void" },
  SSL_set_accept_state: { parameters: ["pointer"], result: "void" },
  SSL_set_num_tickets: { parameters: ["pointer", "usize"], result: "i32" },
  SSL_set_connect_state: { parameters: ["pointer"], result: "void" },
  SSL_do_handshake: { parameters: ["pointer"], result: "i32" },
  SSL_read: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  SSL_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  SSL_get_error: { parameters: ["pointer", "i32"], result: "i32" },
  SSL_shutdown: { parameters: ["pointer"], result: "i32" },
  SSL_get_version: { parameters: ["pointer"], result: "pointer" },
  SSL_get_current_cipher: { parameters: ["pointer"], result: "pointer" },
  SSL_CIPHER_get_name: { parameters: ["pointer"], result: "pointer" },
  SSL_session_reused: { parameters: ["pointer"], result: "i32" },
  SSL_get_session: { parameters: ["pointer"], result: "pointer" },
  SSL_get1_session: { parameters: ["pointer"], result: "pointer" },
  SSL_set_session: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_SESSION_free: { parameters: ["pointer"], result: "void" },
  SSL_SESSION_get_id: { parameters: ["pointer", "buffer"], result: "pointer" },
  PEM_write_bio_SSL_SESSION: { parameters: ["pointer", "pointer"], result: "i32" },
  PEM_read_bio_SSL_SESSION: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "pointer",
  },
  SSL_ctrl_buf: {
    name: "SSL_ctrl",
    parameters: ["pointer", "i32", "i64", "buffer"],
    result: "i64",
  },
  SSL_set1_host: { parameters: ["pointer", "buffer"], result: "i32" },
  SSL_get0_param: { parameters: ["pointer"], result: "pointer" },
  X509_VERIFY_PARAM_set1_ip_asc: { parameters: ["pointer", "buffer"], result: "i32" },
  SSL_get_verify_result: { parameters: ["pointer"], result: "i64" },
  X509_verify_cert_error_string: { parameters: ["i64"], result: "pointer" },
  ERR_get_error: { parameters: [], result: "u64" },
  ERR_error_string_n: { parameters: ["u64", "buffer", "usize"], result: "void" },
  ERR_clear_error: { parameters: [], result: "void" },
  OpenSSL_version: { parameters: ["i32"], result: "pointer" },
  // From libc (a dependency of libssl): reading C memory this way needs no ffi permission at
  // call time, unlike Deno.UnsafePointerView, so the engine works after ffi is revoked.
  strlen: { parameters: ["pointer"], result: "usize" },
  memcpy: { parameters: ["buffer", "pointer", "usize"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

type SslLib = Deno.DynamicLibrary<typeof SSL_SYMBOLS>["symbols"];
type Ptr = Deno.PointerObject;

const SSL_CTRL_MODE = 33;
const SSL_CTRL_SET_TLSEXT_HOSTNAME = 55;
const SSL_CTRL_SET_TLSEXT_TICKET_KEYS = 59;
const SSL_CTRL_CHAIN_CERT = 89;
const SSL_CTRL_SET_MIN_PROTO_VERSION = 123;
const SSL_MODE_RELEASE_BUFFERS = 0x10n;
const SSL_OP_NO_RENEGOTIATION = 1n << 30n;
const SSL_VERIFY_PEER = 1;
const TLS1_2_VERSION = 0x303n;
const TLS1_3_VERSION = 0x304n;
const SSL_ERROR_WANT_READ = 2;
const SSL_ERROR_WANT_WRITE = 3;
const SSL_ERROR_ZERO_RETURN = 6;
/** How long a session (ticket) stays resumable with the OpenSSL engine (OpenSSL: 2 h). */
const SESSION_LIFETIME_SECONDS = 24 * 60 * 60;
/** OpenSSL 3 ticket key material: name 16 + HMAC 32 + AES 32 bytes. */
const OPENSSL_TICKET_KEY_BYTES = 80;

/** NUL-terminated UTF-8 for a C string argument. */
function cString(s: string): Uint8Array {
  return new TextEncoder().encode(s + "\0");
}

/**
 * libssl loaded through FFI: the OpenSSL TLS engine. Load it once at startup with
 * `loadOpenSsl()` (while `--allow-ffi` is granted) and pass it as `engine`.
 */
export interface OpenSsl {
  /** OpenSSL's version text, e.g. "OpenSSL 3.0.22 25 Aug 2026". */
  readonly version: string;
  /** Frees cached contexts and unloads the library; close every connection first. */
  close(): void;
}

class OpenSslEngine implements OpenSsl {
  #lib: Deno.DynamicLibrary<typeof SSL_SYMBOLS>;
  /** Server contexts by options, so TLS 1.2 session-id caching works within the process. */
  #serverContexts = new Map<string, Ptr>();

  readonly version: string;

  constructor(lib: Deno.DynamicLibrary<typeof SSL_SYMBOLS>) {
    this.#lib = lib;
    this.version = this.cString(lib.symbols.OpenSSL_version(0));
  }

  /** The raw symbols. */
  get ssl(): SslLib {
    return this.#lib.symbols;
  }

  /** A copy of `len` bytes at `p`. */
  bytes(p: Deno.PointerObject, len: number): Uint8Array {
    const out = new Uint8Array(len);
    if (len > 0) this.ssl.memcpy(out, p, BigInt(len));
    return out;
  }

  /** The C string at `p`, or "" for NULL. */
  cString(p: Deno.PointerValue): string {
    if (!p) return "";
    return new TextDecoder().decode(this.bytes(p, Number(this.ssl.strlen(p))));
  }

  /** OpenSSL's error queue as an Error (and clears it). */
  error(what: string): Error {
    const L = this.ssl;
    const parts: string[] = [];
    const buf = new Uint8Array(256);
    for (let e = L.ERR_get_error(); e !== 0n; e = L.ERR_get_error()) {
      L.ERR_error_string_n(e, buf, 256n);
      parts.push(new TextDecoder().decode(buf.subarray(0, buf.indexOf(0))));
    }
    return new Error(parts.length > 0 ? `${what}: ${parts.join("; ")}` : what);
  }

  /** The peer's certificate in PEM, or undefined when it sent none. */
  peerCertificatePem(ssl: Ptr): string | undefined {
    const L = this.ssl;
    const x509 = L.SSL_get1_peer_certificate?.(ssl);
    if (!x509) return undefined;
    const bio = L.BIO_new(L.BIO_s_mem());
    try {
      if (!bio || L.PEM_write_bio_X509(bio, x509) !== 1) return undefined;
      const pem = new Uint8Array(Number(L.BIO_ctrl_pending(bio)));
      L.BIO_read(bio, pem, pem.length);
      return new TextDecoder().decode(pem);
    } finally {
      if (bio) L.BIO_free(bio);
      L.X509_free(x509);
    }
  }

  /** PEM objects of one kind, parsed by OpenSSL. */
  #pem(pem: string, kind: "cert" | "key"): Ptr[] {
    const L = this.ssl;
    const data = new TextEncoder().encode(pem);
    const bio = L.BIO_new_mem_buf(data, data.length);
    if (!bio) throw this.error("BIO_new_mem_buf failed");
    const out: Ptr[] = [];
    try {
      while (true) {
        const p = kind === "cert"
          ? L.PEM_read_bio_X509(bio, null, null, null)
          : L.PEM_read_bio_PrivateKey(bio, null, null, null);
        if (!p) break;
        out.push(p);
        if (kind === "key") break;
      }
    } finally {
      L.BIO_free(bio);
      L.ERR_clear_error(); // the read after the last object fails with "no start line"
    }
    return out;
  }

  /** A server SSL_CTX for `opts`, shared by every connection with the same options. */
  serverContext(opts: TlsServerOptions): Ptr {
    const id = createHash("sha256").update(JSON.stringify([
      opts.cert,
      opts.key,
      opts.minVersion ?? "TLSv1.2",
      opts.ticketKeys ? Buffer.from(opts.ticketKeys).toString("hex") : "",
    ])).digest("hex");
    let ctx = this.#serverContexts.get(id);
    if (!ctx) {
      ctx = this.#newServerContext(opts);
      this.#serverContexts.set(id, ctx);
    }
    return ctx;
  }

  #newServerContext(opts: TlsServerOptions): Ptr {
    const L = this.ssl;
    const ctx = L.SSL_CTX_new(L.TLS_server_method());
    if (!ctx) throw this.error("SSL_CTX_new failed");
    try {
      this.#common(ctx, opts.minVersion);
      const certs = this.#pem(opts.cert, "cert");
      try {
        const leaf = certs.shift();
        if (!leaf) throw new SyntaxError("Invalid certificate: no PEM certificate found");
        const usedLeaf = L.SSL_CTX_use_certificate(ctx, leaf); // takes its own reference
        L.X509_free(leaf);
        if (usedLeaf !== 1) throw this.error("Invalid certificate");
        while (certs.length > 0) {
          // SSL_CTX_add0_chain_cert: on success the context owns the certificate.
          if (L.SSL_CTX_ctrl(ctx, SSL_CTRL_CHAIN_CERT, 0n, certs[0]!) !== 1n) {
            throw this.error("Invalid chain certificate");
          }
          certs.shift();
        }
      } finally {
        for (const unused of certs) L.X509_free(unused);
      }
      // Through node:crypto first: any key format becomes unencrypted PKCS#8, and an encrypted
      // key fails here instead of making OpenSSL prompt for a passphrase on the terminal.
      let pkcs8: string;
      try {
        pkcs8 = createPrivateKey(opts.key).export({ type: "pkcs8", format: "pem" }).toString();
      } catch (err) {
        throw new TypeError("Invalid key: not an unencrypted PEM private key", { cause: err });
      }
      const [pkey] = this.#pem(pkcs8, "key");
      if (!pkey) throw new SyntaxError("Invalid key: no PEM private key found");
      const usedKey = L.SSL_CTX_use_PrivateKey(ctx, pkey);
      L.EVP_PKEY_free(pkey);
      if (usedKey !== 1 || L.SSL_CTX_check_private_key(ctx) !== 1) {
        throw this.error("Invalid key for the certificate");
      }
      const sid = new TextEncoder().encode("drftpd");
      L.SSL_CTX_set_session_id_context(ctx, sid, sid.length);
      // FTP control sessions last for hours; data connections must still resume them.
      L.SSL_CTX_set_timeout(ctx, BigInt(SESSION_LIFETIME_SECONDS));
      if (opts.ticketKeys) {
        const keys = new Uint8Array(
          hkdfSync(
            "sha256",
            opts.ticketKeys,
            "drftpd",
            "session tickets",
            OPENSSL_TICKET_KEY_BYTES,
          ),
        );
        const set = L.SSL_CTX_ctrl_buf(
          ctx,
          SSL_CTRL_SET_TLSEXT_TICKET_KEYS,
          BigInt(keys.length),
          keys,
        );
        if (set !== 1n) throw this.error("Setting the ticket keys failed");
      }
      return ctx;
    } catch (err) {
      L.SSL_CTX_free(ctx);
      throw err;
    }
  }

  /** A client SSL_CTX (one per connection; the SSL keeps it alive). */
  clientContext(opts: TlsClientOptions): Ptr {
    const L = this.ssl;
    const ctx = L.SSL_CTX_new(L.TLS_client_method());
    if (!ctx) throw this.error("SSL_CTX_new failed");
    try {
      this.#common(ctx, opts.minVersion);
      if (!opts.insecure) {
        L.SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, null);
        if (opts.caCerts) {
          const store = L.SSL_CTX_get_cert_store(ctx);
          for (const pem of opts.caCerts) {
            for (const x509 of this.#pem(pem, "cert")) {
              L.X509_STORE_add_cert(store, x509); // takes its own reference
              L.X509_free(x509);
            }
          }
        } else {
          L.SSL_CTX_set_default_verify_paths(ctx);
        }
      }
      return ctx;
    } catch (err) {
      L.SSL_CTX_free(ctx);
      throw err;
    }
  }

  #common(ctx: Ptr, minVersion: "TLSv1.2" | "TLSv1.3" | undefined): void {
    const L = this.ssl;
    const version = minVersion === "TLSv1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
    L.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, version, null);
    L.SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, SSL_MODE_RELEASE_BUFFERS, null);
    L.SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  }

  close(): void {
    for (const ctx of this.#serverContexts.values()) this.ssl.SSL_CTX_free(ctx);
    this.#serverContexts.clear();
    this.#lib.close();
  }
}

/**
 * Loads libssl (OpenSSL 3) through FFI; needs `--allow-ffi` for this call only: the engine keeps
 * working after `Deno.permissions.revoke({ name: "ffi" })`, which a role should do right after.
 * Throws when the library is missing (Debian's `libssl3`, which `openssl` pulls in; on macOS pass
 * e.g. `"libssl.3.dylib"`).
 */
export function loadOpenSsl(path = "libssl.so.3"): OpenSsl {
  return new OpenSslEngine(Deno.dlopen(path, SSL_SYMBOLS));
}

function engineOf(engine: OpenSsl): OpenSslEngine {
  if (!(engine instanceof OpenSslEngine)) {
    throw new TypeError("Invalid TLS engine: use the value loadOpenSsl() returned");
  }
  return engine;
}

/** One OpenSSL connection: SSL object, two memory BIOs, the plain connection under it. */
class OpenSslTransport implements Transport {
  #o: OpenSslEngine;
  #conn: PlainConn;
  #ssl: Ptr | null;
  #rbio: Ptr;
  #wbio: Ptr;
  #rbuf = new Uint8Array(64 * 1024);
  #slab = new Uint8Array(0);
  #off = 0;
  #hold: PromiseWithResolvers<void> | null = null;
  #flushing: Promise<void> = Promise.resolve();
  #sink: TransportSink | null = null;
  #resolveClosed!: () => void;
  info: TlsInfo = { protocol: "unknown", cipher: "unknown", resumed: false };
  readonly closed: Promise<void>;

  constructor(o: OpenSslEngine, conn: PlainConn, ctx: Ptr, server: boolean) {
    const L = o.ssl;
    this.#o = o;
    this.#conn = conn;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    const ssl = L.SSL_new(ctx);
    const rbio = L.BIO_new(L.BIO_s_mem());
    const wbio = L.BIO_new(L.BIO_s_mem());
    if (!ssl || !rbio || !wbio) throw o.error("SSL_new failed");
    L.SSL_set_bio(ssl, rbio, wbio); // the SSL owns the BIOs from now on
    if (server) L.SSL_set_accept_state(ssl);
    else L.SSL_set_connect_state(ssl);
    this.#ssl = ssl;
    this.#rbio = rbio;
    this.#wbio = wbio;
  }

  /** The SSL object while the connection is open. */
  get ssl(): Ptr {
    if (!this.#ssl) throw new Deno.errors.BadResource("TLS connection is closed");
    return this.#ssl;
  }

  /** Queues the ciphertext OpenSSL produced for the socket; resolves when all of it is written. */
  #flush(): Promise<void> {
    if (!this.#ssl) return this.#flushing;
    const L = this.#o.ssl;
    const pending = Number(L.BIO_ctrl_pending(this.#wbio));
    if (pending > 0) {
      const out = new Uint8Array(pending);
      const n = L.BIO_read(this.#wbio, out, pending);
      if (n > 0) {
        const chunk = out.subarray(0, n);
        this.#flushing = this.#flushing.then(() => writeAll(this.#conn, chunk));
      }
    }
    return this.#flushing;
  }

  /** Reads ciphertext from the socket into OpenSSL; false at EOF or when closed. */
  async #feed(): Promise<boolean> {
    const n = await this.#conn.read(this.#rbuf);
    if (n === null || !this.#ssl) return false;
    this.#o.ssl.BIO_write(this.#rbio, this.#rbuf, n);
    return true;
  }

  /** Runs the handshake to completion; then fills `info`. */
  async handshake(): Promise<void> {
    const L = this.#o.ssl;
    while (true) {
      L.ERR_clear_error();
      const r = L.SSL_do_handshake(this.ssl);
      const err = r === 1 ? 0 : L.SSL_get_error(this.ssl, r);
      await this.#flush();
      if (r === 1) break;
      if (err !== SSL_ERROR_WANT_READ) {
        const verify = L.SSL_get_verify_result(this.ssl);
        const reason = verify !== 0n
          ? `: certificate verify failed: ${
            this.#o.cString(L.X509_verify_cert_error_string(verify))
          }`
          : "";
        throw this.#o.error(`OpenSSL handshake error ${err}${reason}`);
      }
      if (!(await this.#feed())) throw new Error("connection closed during the handshake");
    }
    const ssl = this.ssl;
    const info: TlsInfo = {
      protocol: this.#o.cString(L.SSL_get_version(ssl)),
      cipher: this.#o.cString(L.SSL_CIPHER_get_name(L.SSL_get_current_cipher(ssl))),
      resumed: L.SSL_session_reused(ssl) === 1,
    };
    const session = L.SSL_get_session(ssl);
    if (session) {
      const len = new Uint32Array(1);
      const id = L.SSL_SESSION_get_id(session, len);
      if (id && len[0]) info.sessionId = Buffer.from(this.#o.bytes(id, len[0])).toString("hex");
    }
    const peer = this.#o.peerCertificatePem(ssl);
    if (peer) info.peerFingerprint = certFingerprint(peer);
    this.info = info;
  }

  start(sink: TransportSink): void {
    this.#sink = sink;
    void this.#pump();
  }

  /** Decrypts what OpenSSL holds; "more" when it needs input, else the stream is over. */
  #drain(sink: TransportSink): "more" | "done" {
    const L = this.#o.ssl;
    while (this.#ssl) {
      if (this.#slab.length - this.#off < SLAB_MIN_ROOM) {
        this.#slab = new Uint8Array(SLAB_BYTES);
        this.#off = 0;
      }
      const room = this.#slab.subarray(this.#off);
      L.ERR_clear_error();
      const n = L.SSL_read(this.#ssl, room, room.length);
      if (n > 0) {
        sink.data(this.#slab.subarray(this.#off, this.#off + n));
        this.#off += n;
        continue;
      }
      const err = L.SSL_get_error(this.#ssl, n);
      void this.#flush().catch(() => {}); // e.g. a KeyUpdate answer; write errors surface there
      if (err === SSL_ERROR_WANT_READ || err === SSL_ERROR_WANT_WRITE) return "more";
      if (err === SSL_ERROR_ZERO_RETURN) {
        sink.end(false); // close_notify
        return "done";
      }
      sink.error(this.#o.error(`TLS read failed (OpenSSL error ${err})`));
      return "done";
    }
    return "done";
  }

  async #pump(): Promise<void> {
    const sink = this.#sink!;
    try {
      while (this.#ssl) {
        if (this.#drain(sink) === "done") return;
        if (this.#hold) {
          await this.#hold.promise;
          continue;
        }
        if (!(await this.#feed())) {
          if (this.#ssl) sink.end(true); // FIN without close_notify
          return;
        }
      }
    } catch (err) {
      if (this.#ssl) sink.error(err as Error);
    }
  }

  pauseReading(): void {
    this.#hold ??= Promise.withResolvers<void>();
  }

  resumeReading(): void {
    const hold = this.#hold;
    this.#hold = null;
    hold?.resolve();
  }

  async write(p: Uint8Array): Promise<void> {
    const L = this.#o.ssl;
    for (let off = 0; off < p.length; off += OPENSSL_WRITE_SLICE) {
      const slice = p.subarray(off, off + OPENSSL_WRITE_SLICE);
      L.ERR_clear_error();
      const n = L.SSL_write(this.ssl, slice, slice.length);
      if (n <= 0) {
        throw this.#o.error(`TLS write failed (OpenSSL error ${L.SSL_get_error(this.ssl, n)})`);
      }
      await this.#flush();
    }
  }

  async shutdownWrite(): Promise<void> {
    if (!this.#ssl) return;
    this.#o.ssl.SSL_shutdown(this.#ssl);
    await this.#flush();
    await this.#conn.closeWrite?.().catch(() => {});
  }

  destroy(): void {
    const ssl = this.#ssl;
    if (!ssl) return;
    this.#ssl = null;
    this.resumeReading();
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    this.#o.ssl.SSL_free(ssl); // frees both BIOs
    this.#resolveClosed();
  }

  getSession(): Uint8Array | undefined {
    if (!this.#ssl) return undefined;
    const L = this.#o.ssl;
    const session = L.SSL_get1_session(this.#ssl);
    if (!session) return undefined;
    const bio = L.BIO_new(L.BIO_s_mem());
    try {
      if (!bio || L.PEM_write_bio_SSL_SESSION(bio, session) !== 1) return undefined;
      const pem = new Uint8Array(Number(L.BIO_ctrl_pending(bio)));
      L.BIO_read(bio, pem, pem.length);
      return pemBody(new TextDecoder().decode(pem), "SSL SESSION PARAMETERS");
    } finally {
      if (bio) L.BIO_free(bio);
      L.SSL_SESSION_free(session);
    }
  }
}

/** The DER bytes of the first PEM block labelled `label`, or undefined. */
function pemBody(pem: string, label: string): Uint8Array | undefined {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(pem);
  return m?.[1] ? new Uint8Array(Buffer.from(m[1].replace(/\s+/g, ""), "base64")) : undefined;
}

function openSslHandshake(
  o: OpenSslEngine,
  conn: PlainConn,
  ctx: Ptr,
  server: boolean,
  setup: (t: OpenSslTransport) => void,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<TlsByteConn> {
  let transport: OpenSslTransport | undefined;
  try {
    transport = new OpenSslTransport(o, conn, ctx, server);
    setup(transport);
  } catch (err) {
    if (transport) transport.destroy();
    else closeQuietly(conn);
    return Promise.reject(err);
  }
  const t = transport;
  return handshakeDeadline(
    async () => {
      await t.handshake();
      return new TlsConn(t);
    },
    () => t.destroy(),
    timeoutMs,
    signal,
  );
}

function openSslServer(
  o: OpenSslEngine,
  conn: PlainConn,
  opts: TlsServerOptions,
): Promise<TlsByteConn> {
  let ctx: Ptr;
  try {
    ctx = o.serverContext(opts);
  } catch (err) {
    closeQuietly(conn);
    return Promise.reject(err);
  }
  return openSslHandshake(
    o,
    conn,
    ctx,
    true,
    (t) => {
      if (opts.issueTickets === false) o.ssl.SSL_set_num_tickets(t.ssl, 0n);
    },
    opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    opts.signal,
  );
}

function openSslClient(
  o: OpenSslEngine,
  conn: PlainConn,
  host: string | undefined,
  servername: string | undefined,
  opts: TlsClientOptions,
): Promise<TlsByteConn> {
  const L = o.ssl;
  let ctx: Ptr;
  try {
    ctx = o.clientContext(opts);
  } catch (err) {
    closeQuietly(conn);
    return Promise.reject(err);
  }
  const setup = (t: OpenSslTransport) => {
    const ssl = t.ssl;
    if (servername !== undefined) {
      L.SSL_ctrl_buf(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, 0n, cString(servername));
    }
    if (!opts.insecure) {
      const name = servername ?? host;
      if (name !== undefined && isIP(name) !== 0) {
        L.X509_VERIFY_PARAM_set1_ip_asc(L.SSL_get0_param(ssl), cString(name));
      } else if (name !== undefined) {
        L.SSL_set1_host(ssl, cString(name));
      }
    }
    if (opts.session) {
      const pem = new TextEncoder().encode(toPem("SSL SESSION PARAMETERS", opts.session));
      const bio = L.BIO_new_mem_buf(pem, pem.length);
      const session = bio && L.PEM_read_bio_SSL_SESSION(bio, null, null, null);
      if (bio) L.BIO_free(bio);
      if (!session) throw o.error("Invalid TLS session");
      L.SSL_set_session(ssl, session); // takes its own reference
      L.SSL_SESSION_free(session);
    }
  };
  try {
    return openSslHandshake(
      o,
      conn,
      ctx,
      false,
      setup,
      opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      opts.signal,
    );
  } finally {
    L.SSL_CTX_free(ctx); // the SSL holds its own reference
  }
}

// ---------------------------------------------------------------------------------------------
// Entry points

/**
 * Performs the TLS server handshake over an accepted plain connection (after `234` to
 * `AUTH TLS`, or on a data connection, passive or active) and returns the TLS connection.
 * The returned object owns `conn`. Rejects with `TlsHandshakeError` (and closes `conn`) when the
 * handshake fails, times out or `signal` aborts; with `RangeError` for bad `ticketKeys`.
 *
 * @example
 * ```ts ignore
 * await writeReply(conn, "234 AUTH TLS successful\r\n");
 * const tlsConn = await upgradeToTlsServer(conn, { cert, key, engine: openSsl });
 * ```
 */
export function upgradeToTlsServer(
  conn: PlainConn,
  opts: TlsServerOptions,
): Promise<TlsByteConn> {
  let engine: OpenSslEngine | undefined;
  try {
    if (opts.ticketKeys && opts.ticketKeys.length !== 48) {
      throw new RangeError(
        `Invalid ticket keys: expected 48 bytes, got ${opts.ticketKeys.length}`,
      );
    }
    engine = opts.engine && engineOf(opts.engine);
  } catch (err) {
    closeQuietly(conn);
    return Promise.reject(err);
  }
  return engine ? openSslServer(engine, conn, opts) : nodeServer(conn, opts);
}

/**
 * Acts as the TLS client on a connection (`SSCN ON`, `CPSV`): over `conn`, or over a new TCP
 * connection to `target`. The returned object owns the connection. Unless `insecure`, verifies
 * the server's certificate against `caCerts` (or the system store) and against `servername`, or
 * else the hostname/IP dialled (for a given `Deno.Conn`: its remote IP).
 * Rejects with `TlsHandshakeError` (and closes the connection) when the handshake fails; with
 * the `Deno.connect` error when dialling fails.
 */
export async function connectTlsClient(
  conn: PlainConn | TlsClientTarget,
  opts: TlsClientOptions = {},
): Promise<TlsByteConn> {
  const engine = opts.engine && engineOf(opts.engine);
  let host: string | undefined;
  let plain: PlainConn;
  if ("read" in conn) {
    plain = conn;
    // Without a servername, check the certificate against the address we are connected to.
    const remote = (conn as Partial<Deno.Conn>).remoteAddr;
    if (remote?.transport === "tcp") host = remote.hostname;
  } else {
    host = conn.hostname;
    plain = await Deno.connect({ hostname: conn.hostname, port: conn.port, transport: "tcp" });
  }
  const servername = opts.servername ?? (host && isIP(host) === 0 ? host : undefined);
  return await (engine
    ? openSslClient(engine, plain, host, servername, opts)
    : nodeClient(plain, host, servername, opts));
}

// ---------------------------------------------------------------------------------------------
// Certificates

/** DER bytes of the first certificate in a PEM text. */
function pemToDer(pem: string): Uint8Array {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem);
  if (!m?.[1]) throw new SyntaxError("Invalid certificate: no PEM CERTIFICATE block found");
  return Buffer.from(m[1].replace(/\s+/g, ""), "base64");
}

/** `"sha256:"` + lowercase hex SHA-256 of the DER form of the first certificate in `pem`. */
export function certFingerprint(pem: string): string {
  return derFingerprint(pemToDer(pem));
}

/** `"sha256:"` + lowercase hex SHA-256 of a DER certificate. */
function derFingerprint(der: Uint8Array): string {
  return "sha256:" + createHash("sha256").update(der).digest("hex");
}

/**
 * Loads `dir/cert.pem` and `dir/key.pem`, or, when neither exists, creates a self-signed
 * certificate for `commonName` (EC P-256, ECDSA-SHA256, 10 years, SAN DNS:commonName (or IP when
 * it is an address) and IP:127.0.0.1, CA:FALSE, serverAuth) and writes them (key mode 0600).
 * Generated with `node:crypto`: no `openssl` binary and no npm package needed.
 * Throws when only one of the two files exists or when the key does not match the certificate.
 */
export async function ensureSelfSignedCert(dir: string, commonName: string): Promise<CertPair> {
  const certPath = `${dir}/cert.pem`;
  const keyPath = `${dir}/key.pem`;
  const [cert, key] = await Promise.all([readIfExists(certPath), readIfExists(keyPath)]);
  if (cert !== null && key !== null) {
    const x509 = new X509Certificate(cert);
    if (!x509.checkPrivateKey(createPrivateKey(key))) {
      throw new Error(`Key does not match certificate: "${keyPath}"`);
    }
    return { cert, key, fingerprint: certFingerprint(cert) };
  }
  if (cert !== null || key !== null) {
    throw new Error(
      `Found only one of cert.pem and key.pem in "${dir}": remove it or supply the other`,
    );
  }
  const made = createSelfSignedCert(commonName);
  await Deno.mkdir(dir, { recursive: true });
  await writeFileAtomic(keyPath, made.key, 0o600);
  await writeFileAtomic(certPath, made.cert, 0o644);
  return made;
}

/** Options of `createSelfSignedCert`. */
export interface SelfSignedOptions {
  /** Validity in days from now; default 3650. */
  days?: number;
  /** Extra DNS names and IP addresses for the SAN (besides commonName and 127.0.0.1). */
  altNames?: string[];
}

/**
 * Creates (in memory) a self-signed EC P-256 certificate for `commonName`; see
 * `ensureSelfSignedCert` for its contents.
 */
export function createSelfSignedCert(
  commonName: string,
  options: SelfSignedOptions = {},
): CertPair {
  if (commonName.length === 0 || commonName.length > 64) {
    throw new RangeError(`Invalid common name: "${commonName}"`);
  }
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const spki = publicKey.export({ type: "spki", format: "der" });
  const tbs = tbsCertificate(commonName, options, new Uint8Array(spki));
  const signature = sign("sha256", tbs, privateKey as KeyObject);
  const der = seq(tbs, ECDSA_SHA256, bitString(new Uint8Array(signature)));
  const cert = toPem("CERTIFICATE", der);
  const key = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  return { cert, key, fingerprint: certFingerprint(cert) };
}

async function readIfExists(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

async function writeFileAtomic(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await Deno.writeTextFile(tmp, text, { mode, createNew: true });
    await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64");
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

// Minimal DER encoder, just enough for one X.509 v3 certificate.

function der(tag: number, body: Uint8Array): Uint8Array {
  const len = body.length;
  let head: number[];
  if (len < 0x80) head = [tag, len];
  else if (len < 0x100) head = [tag, 0x81, len];
  else if (len < 0x10000) head = [tag, 0x82, len >> 8, len & 0xff];
  else head = [tag, 0x83, len >> 16, (len >> 8) & 0xff, len & 0xff];
  const out = new Uint8Array(head.length + len);
  out.set(head);
  out.set(body, head.length);
  return out;
}

function seq(...parts: Uint8Array[]): Uint8Array {
  return der(0x30, concat(parts));
}

function oid(dotted: string): Uint8Array {
  const nums = dotted.split(".").map(Number);
  const bytes = [40 * nums[0]! + nums[1]!];
  for (const n of nums.slice(2)) {
    const group = [n & 0x7f];
    for (let v = n >>> 7; v > 0; v >>>= 7) group.unshift((v & 0x7f) | 0x80);
    bytes.push(...group);
  }
  return der(0x06, new Uint8Array(bytes));
}

function bitString(bytes: Uint8Array): Uint8Array {
  return der(0x03, concat([new Uint8Array([0]), bytes]));
}

function octetString(bytes: Uint8Array): Uint8Array {
  return der(0x04, bytes);
}

function utf8String(text: string): Uint8Array {
  return der(0x0c, new TextEncoder().encode(text));
}

/** UTCTime before 2050, GeneralizedTime from 2050 on (RFC 5280 §4.1.2.5). */
function time(date: Date): Uint8Array {
  const iso = date.toISOString(); // 2026-01-02T03:04:05.000Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, "") + "Z";
  const ascii = new TextEncoder();
  return date.getUTCFullYear() < 2050
    ? der(0x17, ascii.encode(digits.slice(2)))
    : der(0x18, ascii.encode(digits));
}

function ipBytes(ip: string): Uint8Array {
  if (isIP(ip) === 4) return new Uint8Array(ip.split(".").map(Number));
  // IPv6: expand "::" then 8 groups of 16 bits.
  const [head = "", tail] = ip.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

const ECDSA_SHA256 = seq(oid("1.2.840.10045.4.3.2"));

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  const parts = [oid(id)];
  if (critical) parts.push(der(0x01, new Uint8Array([0xff])));
  parts.push(octetString(value));
  return seq(...parts);
}

function tbsCertificate(cn: string, options: SelfSignedOptions, spki: Uint8Array): Uint8Array {
  const serial = new Uint8Array(randomBytes(16));
  serial[0] = (serial[0]! & 0x7f) | 0x40; // positive, no leading zero byte
  const name = seq(der(0x31, seq(oid("2.5.4.3"), utf8String(cn))));
  const now = Date.now();
  const notBefore = new Date(now - 60 * 60 * 1000); // tolerate clock skew
  const notAfter = new Date(now + (options.days ?? 3650) * 24 * 60 * 60 * 1000);
  const names = [cn, "127.0.0.1", ...(options.altNames ?? [])];
  const seen = new Set<string>();
  const general: Uint8Array[] = [];
  for (const n of names) {
    if (seen.has(n)) continue;
    seen.add(n);
    general.push(isIP(n) ? der(0x87, ipBytes(n)) : der(0x82, new TextEncoder().encode(n)));
  }
  const extensions = seq(
    extension("2.5.29.19", true, seq()), // basicConstraints: CA:FALSE
    // keyUsage: digitalSignature (bit 0; 7 unused bits, as DER wants)
    extension("2.5.29.15", true, der(0x03, new Uint8Array([7, 0x80]))),
    extension("2.5.29.37", false, seq(oid("1.3.6.1.5.5.7.3.1"), oid("1.3.6.1.5.5.7.3.2"))),
    extension("2.5.29.17", false, seq(...general)), // subjectAltName
  );
  return seq(
    der(0xa0, der(0x02, new Uint8Array([2]))), // version v3
    der(0x02, serial),
    ECDSA_SHA256,
    name,
    seq(time(notBefore), time(notAfter)),
    name,
    spki,
    der(0xa3, extensions),
  );
}
