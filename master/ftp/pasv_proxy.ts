/**
 * For clients that ignore the address in a 227 reply (curl ≥ 7.74 by default, Python's ftplib,
 * basic-ftp, lftp for 127/8 addresses other than 127.0.0.1): after PASV names a slave, the master
 * also listens on the same port at the control connection's address. A client that connects
 * there instead of to the slave is piped through to the slave's port; the slave's transfer
 * itself is unchanged. This costs the master the transfer's bytes, and is logged with the count.
 */
import { getLogger } from "@logtape/logtape";
import { closeQuietly, sameHost } from "../../shared/net.ts";
import { copy } from "../../shared/bytes.ts";
import { PASSIVE_ACCEPT_MS } from "./data_channel.ts";

const log = getLogger(["drftpd", "master", "data"]);

/** Who may use a {@link PasvProxy} and how it reports. */
export interface PasvProxyOptions {
  /** The only address a client may connect from (null: anyone, FXP). */
  peer: string | null;
  /** Names the transfer in the log. */
  label: string;
  /** How long to listen, ms (default PASSIVE_ACCEPT_MS, as long as the slave's port waits). */
  acceptMs?: number;
  /** Called with every chunk of bytes piped, either way (the master's relayed-bytes counter). */
  onBytes?: (bytes: number) => void;
}

/** A one-connection TCP pipe from the master's port to a slave's passive port. */
export class PasvProxy implements Disposable {
  #listener: Deno.TcpListener;
  #conns: Deno.Conn[] = [];
  #closed = false;
  #bytes = 0;
  #used = false;
  #onBytes: (bytes: number) => void;
  #done: Promise<void>;
  #timer: ReturnType<typeof setTimeout>;

  /**
   * Listens at `listen` (throws if the port is taken) and pipes the first accepted peer to
   * `target`. Stops listening after `acceptMs`, so it never outlives the slave's listener.
   */
  constructor(
    listen: { hostname: string; port: number },
    target: { host: string; port: number },
    options: PasvProxyOptions,
  ) {
    this.#listener = Deno.listen(listen);
    this.#onBytes = options.onBytes ?? (() => {});
    this.#timer = setTimeout(() => this.#closeListener(), options.acceptMs ?? PASSIVE_ACCEPT_MS);
    this.#done = this.#run(target, options.peer, options.label);
  }

  /** Bytes piped so far (both directions). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether a client connected here (instead of to the slave's address). */
  get used(): boolean {
    return this.#used;
  }

  async #run(target: { host: string; port: number }, peer: string | null, label: string) {
    let client: Deno.Conn;
    for (;;) {
      try {
        client = await this.#listener.accept();
      } catch {
        return; // closed: the client went to the slave directly, or nobody came
      }
      const from = (client.remoteAddr as Deno.NetAddr).hostname;
      if (peer === null || sameHost(from, peer)) break;
      log.warn("Refused data connection from {from}: expected {peer}", { from, peer });
      client.close();
    }
    this.#closeListener();
    this.#used = true;
    this.#conns.push(client);
    try {
      const slave = await Deno.connect({ hostname: target.host, port: target.port });
      this.#conns.push(slave);
      // Each direction ends with a half-close (FIN), not a close: the TLS shutdown that client and
      // slave run over this pipe (close_notify one way, the answer the other) must get through.
      // A failure either way drops both.
      const counted = (n: number) => {
        this.#bytes += n;
        this.#onBytes(n);
      };
      const pipe = (from: Deno.Conn, to: Deno.Conn) =>
        copy(from, to, counted).then(async () => {
          // a peer that is gone already has all it will ever read: its FIN is no failure
          await to.closeWrite().catch(() => {});
        }, (e) => {
          this.close();
          throw e;
        });
      const [up, down] = await Promise.allSettled([pipe(client, slave), pipe(slave, client)]);
      for (const r of [up, down]) if (r.status === "rejected") throw r.reason;
      log.info("{label}: the client ignored the PASV address; master relayed {bytes} bytes", {
        label,
        bytes: this.#bytes,
      });
    } catch (e) {
      log.warn("{label}: relay to the slave failed: {error}", { label, error: String(e) });
    } finally {
      this.close();
    }
  }

  #closeListener(): void {
    clearTimeout(this.#timer);
    closeQuietly(this.#listener);
  }

  /** Stops listening; a pipe in progress continues until its transfer ends. */
  stopListening(): void {
    this.#closeListener();
  }

  /** Resolves when the proxy has finished (or never got a client). */
  get done(): Promise<void> {
    return this.#done;
  }

  /** Closes everything. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeListener();
    for (const c of this.#conns) {
      closeQuietly(c);
    }
  }

  /** Same as close(). */
  [Symbol.dispose](): void {
    this.close();
  }
}
