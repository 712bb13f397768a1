/**
 * Accepts FTP control connections and runs a Session for each.
 */
import { getLogger } from "@logtape/logtape";
import { dispatch } from "./dispatcher.ts";
import { type MasterServices, Session } from "./session.ts";

const log = getLogger(["drftpd", "master", "ftp"]);

/** Serves FTP on `listener` until `services.signal` aborts; waits for sessions to end. */
export async function serveFtp(
  listener: Deno.Listener,
  services: MasterServices,
  options: { implicitTls?: boolean } = {},
): Promise<void> {
  const onAbort = () => listener.close();
  services.signal.addEventListener("abort", onAbort, { once: true });
  const sessions = new Set<Promise<void>>();
  let nextId = 1;
  try {
    for await (const conn of listener) {
      if (sessions.size >= services.config.ftp.max_connections) {
        const msg = new TextEncoder().encode("421 Too many connections; try again later\r\n");
        conn.write(msg).catch(() => {}).finally(() => conn.close());
        continue;
      }
      const banned = services.loginGuard.bannedFor((conn.remoteAddr as Deno.NetAddr).hostname);
      if (banned > 0) {
        const msg = new TextEncoder().encode(
          `421 Too many failed logins from your address; try again in ${
            Math.ceil(banned / 1000)
          } s\r\n`,
        );
        conn.write(msg).catch(() => {}).finally(() => conn.close());
        continue;
      }
      // Replies are small: don't let Nagle hold them for the client's delayed ACK.
      (conn as Deno.TcpConn).setNoDelay?.(true);
      const session = new Session(conn, services, nextId++);
      const p = session.run(dispatch, options).catch((e) =>
        log.error("Session {id} ended with an error: {error}", { id: session.id, error: String(e) })
      );
      sessions.add(p);
      p.finally(() => sessions.delete(p));
    }
  } catch (e) {
    if (!services.signal.aborted) throw e;
  } finally {
    services.signal.removeEventListener("abort", onAbort);
    await Promise.allSettled(sessions);
  }
}
