/**
 * The engine-neutral TLS connection: `TlsConn` turns one engine's `Transport` into a
 * `TlsByteConn` (plaintext queue, backpressure, streams, lingering close), and
 * `handshakeDeadline` bounds a handshake by time and signal.
 *
 * @module
 */
import { CLOSE_GRACE_MS, type TlsByteConn, TlsHandshakeError, type TlsInfo } from "./types.ts";

/** Bytes of decrypted input queued before reading from the socket stops. */
export const READ_HIGH_WATER = 256 * 1024;
/** Incoming bytes go into slabs of this size; each chunk handed on is a view (no copy). */
export const SLAB_BYTES = 256 * 1024;
/** Below this much room left in a slab, a new slab is taken (a TLS record is ≤ 16 KiB). */
export const SLAB_MIN_ROOM = 32 * 1024;

/** Where a transport delivers what it decrypted. */
export interface TransportSink {
  data(chunk: Uint8Array): void;
  /** The peer ended; `truncated` when no close_notify came before the FIN. */
  end(truncated: boolean): void;
  error(err: Error): void;
}

/** One engine's TLS connection after the handshake. */
export interface Transport {
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
export class TlsConn implements TlsByteConn, TransportSink {
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
export function handshakeDeadline<T>(
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
