/**
 * Data connections the master serves itself (listings, and the relay for clients without PRET):
 * a single-use passive listener on a port from the configured range, or an active connection.
 */
import { getLogger } from "@logtape/logtape";
import type { PortRange } from "../../shared/config_types.ts";
import { sameHost } from "../../shared/net.ts";

const log = getLogger(["drftpd", "master", "data"]);

/** How long a passive port waits for its client. */
export const PASSIVE_ACCEPT_MS = 60_000;

/** A data channel that can produce one connection. */
export interface DataChannel extends Disposable {
  /** The connection, once the peer is there (passive) or dialled (active). */
  connect(): Promise<Deno.Conn>;
  /** Releases the channel; safe to call more than once. */
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

  /** Listens at `hostname` on a port from `range`. */
  constructor(hostname: string, range: PortRange, peer: string | null) {
    this.#listener = listenInRange(hostname, range);
    this.port = this.#listener.addr.port;
    this.#peer = peer;
    // Accept (and refuse unexpected peers) right away, not only once the transfer command comes.
    this.#accepted = this.#accept();
    this.#accepted.catch(() => {});
  }

  /** Waits for the client's connection. */
  connect(): Promise<Deno.Conn> {
    return this.#accepted;
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
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
  }

  /** Closes the listener and any accepted connection. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeListener();
    try {
      this.#conn?.close();
    } catch {
      // already closed
    }
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
  #conn: Deno.Conn | null = null;
  #closed = false;

  /** Will connect to host:port. */
  constructor(host: string, port: number) {
    this.#host = host;
    this.#port = port;
  }

  /** Connects (once). */
  async connect(): Promise<Deno.Conn> {
    if (this.#closed) throw new Error("Data channel closed");
    this.#conn ??= await Deno.connect({ hostname: this.#host, port: this.#port });
    return this.#conn;
  }

  /** Closes the connection if one was made. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn?.close();
    } catch {
      // already closed
    }
  }

  /** Same as close(). */
  [Symbol.dispose](): void {
    this.close();
  }
}
