/**
 * Data connections the master serves itself (listings, and the relay for clients without PRET):
 * a single-use passive listener on a port from the configured range, or an active connection.
 */
import { getLogger } from "@logtape/logtape";
import type { PortRange } from "../../shared/config_types.ts";
import { closeQuietly, sameHost } from "../../shared/net.ts";

const log = getLogger(["drftpd", "master", "data"]);

/** How long a passive port waits for its client. */
export const PASSIVE_ACCEPT_MS = 60_000;

/**
 * A data channel that can produce one connection. `connect()` hands the connection over: from
 * then on the caller closes it (a TLS connection over it must be able to send close_notify and
 * linger after the channel is released), and `close()` only stops what has not been handed over.
 */
export interface DataChannel extends Disposable {
  /** The connection, once the peer is there (passive) or dialled (active); the caller owns it. */
  connect(): Promise<Deno.Conn>;
  /** Releases the channel and a connection not yet handed over; safe to call more than once. */
  close(): void;
}

/** No free port in the passive range. */
export class NoPortError extends Error {
  /** Creates the error. */
  constructor(range: PortRange) {
    super(`No free passive port in ${range.from}-${range.to}`);
    this.name = "NoPortError";
  }
}

/** Opens a listener on a free port of `range` at `hostname`, trying ports in random order. */
export function listenInRange(hostname: string, range: PortRange): Deno.TcpListener {
  const count = range.to - range.from + 1;
  const start = Math.floor(Math.random() * count);
  for (let i = 0; i < count; i++) {
    const port = range.from + ((start + i) % count);
    try {
      return Deno.listen({ hostname, port, transport: "tcp" });
    } catch (e) {
      if (e instanceof Deno.errors.AddrInUse || e instanceof Deno.errors.PermissionDenied) continue;
      throw e;
    }
  }
  throw new NoPortError(range);
}

/**
 * A single-use passive listener. Accepts the first connection whose address is `peer`
 * (any address when `peer` is null); others are closed and logged. Times out after PASSIVE_ACCEPT_MS.
 */
export class PassiveChannel implements DataChannel {
  readonly port: number;
  #listener: Deno.TcpListener;
  #peer: string | null;
  #accepted: Promise<Deno.Conn>;
  #closed = false;
  #conn: Deno.Conn | null = null;
  #handedOver = false;

  /** Listens at `hostname` on a port from `range`. */
  constructor(hostname: string, range: PortRange, peer: string | null) {
    this.#listener = listenInRange(hostname, range);
    this.port = this.#listener.addr.port;
    this.#peer = peer;
    // Accept (and refuse unexpected peers) right away, not only once the transfer command comes.
    this.#accepted = this.#accept();
    this.#accepted.catch(() => {});
  }

  /** Waits for the client's connection and hands it over (the caller closes it). */
  async connect(): Promise<Deno.Conn> {
    this.#handedOver = true;
    const conn = await this.#accepted;
    if (this.#closed) {
      conn.close();
      throw new Error("Data connection was aborted");
    }
    return conn;
  }

  async #accept(): Promise<Deno.Conn> {
    const timer = setTimeout(() => this.close(), PASSIVE_ACCEPT_MS);
    try {
      for (;;) {
        let conn: Deno.Conn;
        try {
          conn = await this.#listener.accept();
        } catch {
          throw new Error(
            this.#closed
              ? "Data connection was not opened in time or was aborted"
              : "Passive listener failed",
          );
        }
        const from = (conn.remoteAddr as Deno.NetAddr).hostname;
        if (this.#peer !== null && !sameHost(from, this.#peer)) {
          log.warn("Refused data connection from {from} on port {port}: expected {peer}", {
            from,
            port: this.port,
            peer: this.#peer,
          });
          conn.close();
          continue;
        }
        this.#conn = conn;
        return conn;
      }
    } finally {
      clearTimeout(timer);
      this.#closeListener();
    }
  }

  #closeListener(): void {
    closeQuietly(this.#listener);
  }

  /** Closes the listener, and an accepted connection nobody asked for. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeListener();
    if (!this.#handedOver && this.#conn) closeQuietly(this.#conn);
  }

  /** Same as close(). */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** An active data connection to the client's PORT/EPRT address. */
export class ActiveChannel implements DataChannel {
  #host: string;
  #port: number;
  #dialled: Promise<Deno.TcpConn> | null = null;
  #closed = false;

  /** Will connect to host:port. */
  constructor(host: string, port: number) {
    this.#host = host;
    this.#port = port;
  }

  /** Connects (once) and hands the connection over (the caller closes it). */
  async connect(): Promise<Deno.Conn> {
    if (this.#closed) throw new Error("Data channel closed");
    this.#dialled ??= Deno.connect({ hostname: this.#host, port: this.#port });
    const conn = await this.#dialled;
    if (this.#closed) {
      closeQuietly(conn);
      throw new Error("Data connection was aborted");
    }
    return conn;
  }

  /** Marks the channel closed: a dial still in progress is closed when it completes. */
  close(): void {
    this.#closed = true;
  }

  /** Same as close(). */
  [Symbol.dispose](): void {
    this.close();
  }
}
