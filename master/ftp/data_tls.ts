/**
 * TLS on the data connections the master serves itself (listings, relay), and the relay's byte
 * copy, which works for plain and TLS connections alike.
 */
import type { ByteConn } from "../../shared/link.ts";
import { connectTlsClient, upgradeToTlsServer } from "../../shared/tls/mod.ts";
import { FtpError } from "./errors.ts";
import type { DataSecurity, Session } from "./session.ts";
import { copy } from "../../shared/bytes.ts";
import { PROTOCOL_NOT_SUPPORTED } from "./replies.ts";

/** A data connection, plain or TLS. */
export interface DataConn extends ByteConn {
  /** TLS only: flush, send close_notify and FIN. */
  closeWrite?(): Promise<void>;
  /** TLS only: close without close_notify. */
  abort?(): void;
}

/** Wraps an accepted or dialled data connection in TLS when PROT P is in force. */
export async function secureDataConn(
  s: Session,
  conn: Deno.Conn,
  sec: DataSecurity,
): Promise<DataConn> {
  if (!sec.protect) return conn;
  const tls = s.services.tls;
  if (!tls) throw new FtpError(PROTOCOL_NOT_SUPPORTED, "TLS is not available on this server");
  const engine = tls.engine ? { engine: tls.engine } : {};
  try {
    return sec.asClient
      ? await connectTlsClient(conn, { insecure: true, ...engine, handshakeTimeoutMs: 30_000 })
      : await upgradeToTlsServer(conn, {
        cert: tls.cert,
        key: tls.key,
        ticketKeys: tls.ticketSecret,
        issueTickets: false,
        ...engine,
        handshakeTimeoutMs: 30_000,
      });
  } catch (e) {
    conn.close();
    throw new FtpError(
      PROTOCOL_NOT_SUPPORTED,
      `TLS on the data connection failed: ${e instanceof Error ? e.message : e}`,
    );
  }
}

/** Ends our side of a data connection cleanly: close_notify + FIN for TLS, FIN for TCP. */
export async function finish(conn: DataConn): Promise<void> {
  if (conn.closeWrite) await conn.closeWrite();
  conn.close();
}

/**
 * Copies `src` to `dst` until `src` ends, then ends `dst`'s write side. Returns bytes copied
 * (`counted` sees each chunk).
 */
export async function relayBytes(
  src: DataConn,
  dst: DataConn,
  counted?: (bytes: number) => void,
): Promise<number> {
  const total = await copy(src, dst, counted);
  await dst.closeWrite?.();
  return total;
}
