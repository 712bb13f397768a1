/**
 * Framing and handshake proofs for the master↔slave link.
 *
 * A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON.
 * Frames larger than `MAX_FRAME_BYTES` end the link.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { MAX_FRAME_BYTES } from "./protocol.ts";
import { writeAll } from "./bytes.ts";
import { closeQuietly } from "./net.ts";

/** The part of a connection the link needs; `Deno.Conn` and `Deno.TlsConn` both fit. */
export interface ByteConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

/** Raised when the peer breaks the framing rules (oversized or malformed frame). */
export class LinkProtocolError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "LinkProtocolError";
  }
}

/**
 * Reads and writes whole JSON frames on a byte connection. Writes are serialised. `Out` is the
 * union of frames this side may send (`FromMaster` on the master, `FromSlave` on the slave);
 * what `read()` returns is still unchecked JSON (see `parseFromSlave`/`parseFromMaster`).
 */
export class FrameConn<Out extends object = object> {
  #conn: ByteConn;
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;
  #encoder = new TextEncoder();
  #decoder = new TextDecoder();
  /**
   * Largest frame `read()` accepts (default `MAX_FRAME_BYTES`). Security: keep it small until
   * the peer has authenticated, so a stranger cannot make us buffer a megabyte.
   */
  maxReadBytes: number = MAX_FRAME_BYTES;

  /** Wraps `conn`; the FrameConn owns it from now on. */
  constructor(conn: ByteConn) {
    this.#conn = conn;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  async #fill(need: number): Promise<boolean> {
    while (this.#end - this.#start < need) {
      if (this.#buf.length - this.#start < need) {
        const size = Math.max(need, this.#buf.length);
        const next = new Uint8Array(size);
        next.set(this.#buf.subarray(this.#start, this.#end));
        this.#end -= this.#start;
        this.#start = 0;
        this.#buf = next;
      }
      const n = await this.#conn.read(this.#buf.subarray(this.#end));
      if (n === null) return false;
      this.#end += n;
    }
    return true;
  }

  /** Next frame's decoded JSON, or null at a clean end of stream. Throws LinkProtocolError on bad frames. */
  async read(): Promise<unknown | null> {
    if (!(await this.#fill(4))) {
      if (this.#end > this.#start) {
        throw new LinkProtocolError("Link closed in the middle of a frame");
      }
      return null;
    }
    const view = new DataView(this.#buf.buffer, this.#buf.byteOffset + this.#start, 4);
    const len = view.getUint32(0);
    if (len > this.maxReadBytes) {
      throw new LinkProtocolError(`Frame too large: ${len} bytes (limit ${this.maxReadBytes})`);
    }
    this.#start += 4;
    if (!(await this.#fill(len))) {
      throw new LinkProtocolError("Link closed in the middle of a frame");
    }
    const text = this.#decoder.decode(this.#buf.subarray(this.#start, this.#start + len));
    this.#start += len;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#buf.length > 256 * 1024 && this.#start === 0 && this.#end === 0) {
      this.#buf = new Uint8Array(64 * 1024);
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new LinkProtocolError("Frame is not valid JSON");
    }
  }

  /** Sends one message as a frame. Rejects when the link is closed or the frame is too large. */
  write(msg: Out): Promise<void> {
    const body = this.#encoder.encode(JSON.stringify(msg));
    if (body.length > MAX_FRAME_BYTES) {
      return Promise.reject(new LinkProtocolError(`Frame too large to send: ${body.length} bytes`));
    }
    const frame = new Uint8Array(4 + body.length);
    new DataView(frame.buffer).setUint32(0, body.length);
    frame.set(body, 4);
    const next = this.#writing.then(async () => {
      if (this.#closed) throw new LinkProtocolError("Link is closed");
      await writeAll(this.#conn, frame);
    });
    this.#writing = next.catch(() => {});
    return next;
  }

  /** Closes the connection; safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#conn);
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** A fresh random nonce for the handshake. */
export function newNonce(): string {
  return randomBytes(24).toString("base64");
}

/** The slave's proof: HMAC-SHA256(secret, "slave:" + masterNonce + ":" + name), base64. */
export function slaveProof(secret: string, masterNonce: string, name: string): string {
  return createHmac("sha256", secret).update(`slave:${masterNonce}:${name}`).digest("base64");
}

/** The master's proof: HMAC-SHA256(secret, "master:" + slaveNonce + ":" + name), base64. */
export function masterProof(secret: string, slaveNonce: string, name: string): string {
  return createHmac("sha256", secret).update(`master:${slaveNonce}:${name}`).digest("base64");
}

/** Constant-time comparison of two base64 proofs. */
export function proofsEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
