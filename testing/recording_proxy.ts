/**
 * A TCP proxy for tests that records every byte in both directions, to check what an observer
 * of the wire would see, and can hold back what the connecting side sends (to order events).
 */

/** One recording proxy on `listen` forwarding to `target`. */
export class RecordingProxy implements AsyncDisposable {
  readonly port: number;
  #listener: Deno.TcpListener;
  #chunks: Uint8Array[] = [];
  #conns: Deno.Conn[] = [];
  #running: Promise<void>;
  #pipes = new Set<Promise<unknown>>();
  #gate: Promise<void> | null = null;
  #open: () => void = () => {};

  /** Listens on `hostname:port` (0 = any free port) and forwards to `target`. */
  constructor(hostname: string, port: number, target: () => { hostname: string; port: number }) {
    this.#listener = Deno.listen({ hostname, port });
    this.port = this.#listener.addr.port;
    this.#running = this.#serve(target);
  }

  async #serve(target: () => { hostname: string; port: number }) {
    for await (const client of this.#listener) {
      this.#conns.push(client);
      const p = (async () => {
        let server: Deno.Conn;
        try {
          server = await Deno.connect(target());
        } catch {
          client.close(); // the target is not up yet: let the peer see it and retry
          return;
        }
        this.#conns.push(server);
        await Promise.allSettled([
          this.#copy(client, server, true),
          this.#copy(server, client, false),
        ]);
        for (const c of [client, server]) {
          try {
            c.close();
          } catch {
            // closed
          }
        }
      })().catch(() => {});
      this.#pipes.add(p);
      p.finally(() => this.#pipes.delete(p));
    }
  }

  async #copy(from: Deno.Conn, to: Deno.Conn, upstream: boolean) {
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await from.read(buf);
      if (n === null) break;
      this.#chunks.push(buf.slice(0, n));
      while (upstream && this.#gate) await this.#gate;
      let off = 0;
      while (off < n) off += await to.write(buf.subarray(off, n));
    }
    await to.closeWrite().catch(() => {});
  }

  /** From now on, bytes the connecting side sends are held (not forwarded) until {@link release}. */
  hold(): void {
    this.#gate ??= new Promise((resolve) => (this.#open = resolve));
  }

  /** Forwards what {@link hold} kept, and everything after it. */
  release(): void {
    this.#gate = null;
    this.#open();
  }

  /** Everything recorded so far, both directions concatenated per chunk. */
  get bytes(): Uint8Array {
    const total = this.#chunks.reduce((a, c) => a + c.length, 0);
    const out = new Uint8Array(total);
    let off = 0;
    for (const c of this.#chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }

  /** Whether `needle` appears in the recorded bytes. */
  saw(needle: Uint8Array | string): boolean {
    const n = typeof needle === "string" ? new TextEncoder().encode(needle) : needle;
    const hay = this.bytes;
    outer: for (let i = 0; i + n.length <= hay.length; i++) {
      for (let j = 0; j < n.length; j++) if (hay[i + j] !== n[j]) continue outer;
      return true;
    }
    return false;
  }

  /** Stops listening, closes every connection, waits for the pipes. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // closed
    }
    for (const c of this.#conns) {
      try {
        c.close();
      } catch {
        // closed
      }
    }
    await this.#running.catch(() => {});
    await Promise.allSettled([...this.#pipes]);
  }
}
