/**
 * TLS building blocks for FTPS: upgrading an accepted plain TCP connection to a TLS server
 * (`AUTH TLS`, passive and active data connections), acting as a TLS client on a data connection
 * (`SSCN`/`CPSV`), and a self-signed certificate for first start.
 *
 * Deno has no server-side `startTls`, so the server side runs `node:tls` over a small `Duplex`
 * that reads and writes the `Deno.Conn`. Everything returned implements `ByteConn`.
 *
 * Facts about Deno 2.9.6's `node:tls` (rustls underneath) that callers must know:
 * - Session resumption works between every `node:tls` socket of one process (one ticket key per
 *   process, whatever the secure context), for TLS 1.2 and 1.3.
 * - `ticketKeys` is validated and then ignored: two processes never resume each other's sessions.
 * - A certificate with `CA:TRUE` is refused by rustls clients (`Deno.connectTls`, `Deno.startTls`,
 *   `node:tls` in Deno) as an end-entity certificate; `ensureSelfSignedCert` writes `CA:FALSE`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  X509Certificate,
} from "node:crypto";
import { isIP } from "node:net";
import { Duplex } from "node:stream";
import * as tls from "node:tls";
import type { ByteConn } from "./link.ts";

/** A plain connection that TLS can run over; `Deno.Conn` fits. */
export interface PlainConn extends ByteConn {
  /** Half-closes the write side (TCP FIN), if supported. */
  closeWrite?(): Promise<void>;
}

/** What the handshake settled on. */
export interface TlsInfo {
  /** Protocol version, e.g. `"TLSv1.3"`. */
  protocol: string;
  /** Cipher suite (OpenSSL/IANA name as reported by `node:tls`). */
  cipher: string;
  /** Whether the handshake resumed an earlier session (`isSessionReused()`). */
  resumed: boolean;
  /** Session id, when the TLS engine exposes one (Deno's rustls-based `node:tls` does not). */
  sessionId?: string;
}

/** A TLS connection usable wherever a `ByteConn` is. */
export interface TlsByteConn extends ByteConn, Disposable, AsyncDisposable {
  /** Negotiated protocol, cipher and whether the session was resumed. */
  readonly info: TlsInfo;
  /** The peer's plaintext as a stream (shares the read side with `read()`: use one or the other). */
  readonly readable: ReadableStream<Uint8Array>;
  /** Plaintext to the peer; closing it sends close_notify and FIN, aborting it closes. */
  readonly writable: WritableStream<Uint8Array>;
  /** Settles when the underlying connection is closed. Never rejects. */
  readonly closed: Promise<void>;
  /**
   * Sends close_notify and half-closes TCP, after everything written so far is flushed.
   * Reading goes on until the peer ends. Idempotent.
   */
  closeWrite(): Promise<void>;
  /**
   * True when the peer's stream ended with a bare TCP FIN, without TLS close_notify (a client
   * that does not shut TLS down, or a truncation attack). `read()` still returns null then, like
   * vsftpd's default `strict_ssl_read_eof=NO`; a strict server treats the upload as interrupted.
   */
  readonly truncated: boolean;
  /**
   * The TLS session to offer on a later connection (`connectTlsClient` `session`), or undefined.
   * With TLS 1.3 it exists only after the server's ticket arrived, i.e. after some reading.
   */
  getSession(): Uint8Array | undefined;
  /**
   * Closes gracefully: queues close_notify and FIN, then closes the socket once flushed
   * (at most `CLOSE_GRACE_MS` later). Idempotent; a pending `read()` resolves null.
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
   * 48-byte session-ticket keys shared by master and slaves. Passed to `node:tls`, which in
   * Deno 2.9.6 ignores it (see the module documentation); kept so the config stays honest
   * when a TLS engine that honours it is used.
   */
  ticketKeys?: Uint8Array;
  /** Lowest protocol accepted; default `"TLSv1.2"`. */
  minVersion?: "TLSv1.2" | "TLSv1.3";
  /** Abort the handshake after this many milliseconds; default 30 000. */
  handshakeTimeoutMs?: number;
  /** Aborts a handshake in progress (the connection is closed). */
  signal?: AbortSignal;
}

/** Options of `connectTlsClient`. */
export interface TlsClientOptions {
  /** SNI and the name checked against the certificate; default: the hostname, if not an IP. */
  servername?: string;
  /** Trusted PEM certificates; default: the system store of `node:tls`. */
  caCerts?: string[];
  /** Skip certificate verification (FXP peers with self-signed certificates). */
  insecure?: boolean;
  /** A session from `TlsByteConn.getSession()` to resume. */
  session?: Uint8Array;
  /** Lowest protocol accepted; default `"TLSv1.2"`. */
  minVersion?: "TLSv1.2" | "TLSv1.3";
  /** Abort the handshake after this many milliseconds; default 30 000. */
  handshakeTimeoutMs?: number;
  /** Aborts a handshake in progress (the connection is closed). */
  signal?: AbortSignal;
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

/** How long `close()` waits for close_notify to be flushed before closing the socket anyway. */
export const CLOSE_GRACE_MS = 2000;

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;
/** Bytes of decrypted input queued before the socket is paused. */
const READ_HIGH_WATER = 256 * 1024;
/** Raw reads go into slabs of this size; each pushed chunk is a view (no copy). */
const SLAB_BYTES = 256 * 1024;
/** Below this much room left in a slab, a new slab is taken. */
const SLAB_MIN_ROOM = 32 * 1024;

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
  /** Whether the plain connection's read side reached its end (TCP FIN). */
  rawEnded = false;
  /** Resolves when the plain connection has been closed. */
  readonly connClosed: Promise<void>;
  #resolveClosed!: () => void;

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
          // bytes ends the TLS stream before the bare FIN does (see TlsSocketConn.truncated).
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

async function writeAll(conn: ByteConn, p: Uint8Array): Promise<void> {
  let off = 0;
  while (off < p.length) off += await conn.write(p.subarray(off));
}

/** The `TlsByteConn` over a connected `tls.TLSSocket`. */
class TlsSocketConn implements TlsByteConn {
  #socket: tls.TLSSocket;
  #duplex: ConnDuplex;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #truncated = false;
  #error: Error | null = null;
  #waiter: (() => void) | null = null;
  #closing = false;
  #writeEnded: Promise<void> | null = null;
  #readable: ReadableStream<Uint8Array> | null = null;
  #writable: WritableStream<Uint8Array> | null = null;
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
    socket.on("data", (chunk: Uint8Array) => {
      this.#queue.push(chunk);
      this.#queued += chunk.length;
      if (this.#queued >= READ_HIGH_WATER) duplex.pauseReading();
      this.#wake();
    });
    socket.on("end", () => {
      // close_notify ends the TLS stream while TCP is still open; a bare FIN ends both at once.
      this.#truncated = duplex.rawEnded;
      this.#ended = true;
      this.#wake();
    });
    socket.on("error", (err: Error) => {
      this.#error ??= err;
      this.#wake();
    });
    // Errors of the plain connection (e.g. a reset) do not all reach the TLS socket.
    duplex.on("error", (err: Error) => {
      this.#error ??= err;
      this.#wake();
    });
    socket.on("close", () => {
      if (!this.#ended && !this.#closing) this.#truncated = true;
      this.#ended = true;
      this.#wake();
    });
    // When the plain connection goes away, so does the TLS socket.
    void duplex.connClosed.then(() => socket.destroy());
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  /** The next chunk of plaintext (a view, not a copy), or null at the end. */
  async #next(): Promise<Uint8Array | null> {
    while (this.#queue.length === 0) {
      if (this.#error && !this.#closing) throw this.#error;
      if (this.#ended || this.#closing) return null;
      await new Promise<void>((resolve) => this.#waiter = resolve);
    }
    const chunk = this.#queue.shift()!;
    this.#queued -= chunk.length;
    if (this.#queued < READ_HIGH_WATER) this.#duplex.resumeReading();
    return chunk;
  }

  /** Reads plaintext into `p`; null when the peer ended (close_notify or FIN) or after close(). */
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

  /** Writes all of `p` (resolves once TLS has taken it, so `p` may be reused). */
  write(p: Uint8Array): Promise<number> {
    if (this.#closing || this.#writeEnded) {
      return Promise.reject(new Deno.errors.BadResource("TLS connection is closed for writing"));
    }
    if (this.#error) return Promise.reject(this.#error);
    const len = p.length;
    return new Promise((resolve, reject) => {
      this.#socket.write(p, (err) => err ? reject(err) : resolve(len));
    });
  }

  closeWrite(): Promise<void> {
    // Done when the plain connection has flushed everything and sent FIN (or is closed): the
    // TLS socket's own 'finish' comes while ciphertext may still queue in the Duplex.
    this.#writeEnded ??= new Promise<void>((resolve) => {
      const duplex = this.#duplex;
      if (duplex.destroyed || duplex.writableFinished) return resolve();
      duplex.once("finish", () => resolve());
      duplex.once("close", () => resolve());
      this.#socket.end();
    });
    return this.#writeEnded;
  }

  get truncated(): boolean {
    return this.#truncated;
  }

  getSession(): Uint8Array | undefined {
    return this.#socket.getSession() ?? undefined;
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
    this.#wake();
    if (this.#socket.destroyed) return;
    const timer = setTimeout(() => this.abort(), CLOSE_GRACE_MS);
    void this.closed.then(() => clearTimeout(timer));
    // end() sends close_notify; once the TLS socket finished writing, drop the connection.
    void this.closeWrite().then(() => this.abort());
  }

  abort(): void {
    this.#closing = true;
    this.#wake();
    this.#socket.destroy();
    this.#duplex.destroy();
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
 * Runs a handshake on `socket` and resolves the connected `TlsByteConn`; on failure, timeout
 * or abort, closes everything and rejects with `TlsHandshakeError`.
 */
function handshake(
  socket: tls.TLSSocket,
  duplex: ConnDuplex,
  event: "secure" | "secureConnect",
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<TlsSocketConn> {
  return new Promise((resolve, reject) => {
    const fail = (err: unknown) => {
      cleanup();
      socket.destroy();
      duplex.destroy();
      const message = err instanceof Error ? err.message : String(err);
      reject(new TlsHandshakeError(`TLS handshake failed: ${message}`, { cause: err }));
    };
    const onError = (err: Error) => fail(err);
    const onClose = () => fail(new Error("connection closed during the handshake"));
    const onAbort = () => fail(signal?.reason ?? new Error("aborted"));
    const timer = setTimeout(() => fail(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    const onSecure = () => {
      cleanup();
      resolve(new TlsSocketConn(socket, duplex));
    };
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.off("error", onError);
      socket.off("close", onClose);
      socket.off(event, onSecure);
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.on("error", onError);
    socket.on("close", onClose);
    socket.once(event, onSecure);
  });
}

/**
 * Performs the TLS server handshake over an accepted plain connection (after `234` to
 * `AUTH TLS`, or on a data connection, passive or active) and returns the TLS connection.
 * The returned object owns `conn`. Rejects with `TlsHandshakeError` (and closes `conn`) when the
 * handshake fails, times out or `signal` aborts.
 *
 * @example
 * ```ts ignore
 * await writeReply(conn, "234 AUTH TLS successful\r\n");
 * const tlsConn = await upgradeToTlsServer(conn, { cert, key });
 * ```
 */
export function upgradeToTlsServer(
  conn: PlainConn,
  opts: TlsServerOptions,
): Promise<TlsByteConn> {
  const duplex = new ConnDuplex(conn);
  const contextOptions: tls.SecureContextOptions = {
    cert: opts.cert,
    key: opts.key,
    minVersion: opts.minVersion ?? "TLSv1.2",
  };
  if (opts.ticketKeys) {
    if (opts.ticketKeys.length !== 48) {
      duplex.destroy();
      return Promise.reject(
        new RangeError(`Invalid ticket keys: expected 48 bytes, got ${opts.ticketKeys.length}`),
      );
    }
    contextOptions.ticketKeys = Buffer.from(opts.ticketKeys);
  }
  let socket: tls.TLSSocket;
  try {
    const secureContext = tls.createSecureContext(contextOptions);
    socket = new tls.TLSSocket(duplex, { isServer: true, secureContext });
  } catch (err) {
    duplex.destroy();
    return Promise.reject(err);
  }
  return handshake(
    socket,
    duplex,
    "secure",
    opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    opts.signal,
  );
}

/**
 * Acts as the TLS client on a connection (`SSCN ON`, `CPSV`): over `conn`, or over a new TCP
 * connection to `target`. The returned object owns the connection. Verifies the server's
 * certificate against `caCerts` (or the system store) and name unless `insecure`.
 * Rejects with `TlsHandshakeError` (and closes the connection) on failure.
 */
export async function connectTlsClient(
  conn: PlainConn | TlsClientTarget,
  opts: TlsClientOptions = {},
): Promise<TlsByteConn> {
  let host: string | undefined;
  let plain: PlainConn;
  if ("read" in conn) {
    plain = conn;
  } else {
    host = conn.hostname;
    plain = await Deno.connect({ hostname: conn.hostname, port: conn.port, transport: "tcp" });
  }
  const duplex = new ConnDuplex(plain);
  const servername = opts.servername ?? (host && isIP(host) === 0 ? host : undefined);
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
    throw err;
  }
  return await handshake(
    socket,
    duplex,
    "secureConnect",
    opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    opts.signal,
  );
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
  return "sha256:" + createHash("sha256").update(pemToDer(pem)).digest("hex");
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

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
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
