/**
 * The public shapes of the TLS layer: connection, options, what a handshake settled on, the error
 * a failed handshake raises, and the handle of the OpenSSL engine.
 *
 * @module
 */
import type { ByteConn } from "../link.ts";

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

/** How long a handshake may take unless the options say otherwise. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;

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
