/**
 * The node:tls engine (the default, no extra permission). Deno has no server-side `startTls`, so
 * node:tls runs over a small `Duplex` that reads and writes the `Deno.Conn`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { Duplex } from "node:stream";
import * as tls from "node:tls";
import { writeAll } from "../bytes.ts";
import { derFingerprint } from "./certificate.ts";
import {
  handshakeDeadline,
  SLAB_BYTES,
  SLAB_MIN_ROOM,
  TlsConn,
  type Transport,
  type TransportSink,
} from "./_connection.ts";
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  type PlainConn,
  type TlsByteConn,
  type TlsClientOptions,
  type TlsInfo,
  type TlsServerOptions,
} from "./types.ts";
import { closeQuietly } from "../net.ts";

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
    closeQuietly(this.#conn);
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

/**
 * Makes the TLS socket over `duplex` and waits for `event` ("secure" on servers,
 * "secureConnect" on clients), within the options' handshake timeout and signal.
 */
function nodeHandshake(
  duplex: ConnDuplex,
  event: "secure" | "secureConnect",
  opts: { handshakeTimeoutMs?: number; signal?: AbortSignal; makeSocket: () => tls.TLSSocket },
): Promise<TlsByteConn> {
  let socket: tls.TLSSocket;
  try {
    socket = opts.makeSocket();
  } catch (err) {
    duplex.destroy();
    return Promise.reject(err);
  }
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
    opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    opts.signal,
  );
}

export function nodeServer(conn: PlainConn, opts: TlsServerOptions): Promise<TlsByteConn> {
  const duplex = new ConnDuplex(conn);
  const contextOptions: tls.SecureContextOptions = {
    cert: opts.cert,
    key: opts.key,
    minVersion: opts.minVersion ?? "TLSv1.2",
  };
  if (opts.ticketKeys) contextOptions.ticketKeys = Buffer.from(opts.ticketKeys);
  return nodeHandshake(duplex, "secure", {
    ...opts,
    makeSocket: () =>
      new tls.TLSSocket(duplex, {
        isServer: true,
        secureContext: tls.createSecureContext(contextOptions),
      }),
  });
}

export function nodeClient(
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
  return nodeHandshake(duplex, "secureConnect", {
    ...opts,
    makeSocket: () => tls.connect(options),
  });
}
