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
import { isIP } from "node:net";
import { closeQuietly } from "../net.ts";
import { nodeClient, nodeServer } from "./_node_engine.ts";
import { engineOf, openSslClient, type OpenSslEngine, openSslServer } from "./_openssl_engine.ts";
import type {
  PlainConn,
  TlsByteConn,
  TlsClientOptions,
  TlsClientTarget,
  TlsServerOptions,
} from "./types.ts";

export { loadOpenSsl } from "./_openssl_engine.ts";
export {
  certFingerprint,
  createSelfSignedCert,
  ensureSelfSignedCert,
  type SelfSignedOptions,
} from "./certificate.ts";
export * from "./types.ts";

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
