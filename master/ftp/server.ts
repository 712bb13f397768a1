/**
 * Accepts FTP control connections and runs a Session for each.
 */
import { getLogger } from "@logtape/logtape";
import { acceptLoop } from "../../shared/accept.ts";
import { evictionFor } from "./admission.ts";
import { dispatch } from "./dispatcher.ts";
import { type MasterServices, Session } from "./session.ts";
import { NOT_AVAILABLE_CLOSING } from "./replies.ts";

const log = getLogger(["drftpd", "master", "ftp"]);

/**
 * Serves FTP on `listener` until `services.stopping` aborts; waits for sessions to end.
 *
 * Security: at `max_connections` a new connection takes the place of one that has not logged in
 * yet (which gets 421): its own address's oldest, else the oldest of the address holding the
 * most (`admission.ts`), so idle unauthenticated connections cannot lock honest users out and a
 * flood replaces itself first; only when every session is logged in is the newcomer refused. The
 * per-address limit and bans are checked before, so a refused newcomer costs nobody a place.
 */
export async function serveFtp(
  listener: Deno.Listener,
  services: MasterServices,
  options: { implicitTls?: boolean } = {},
): Promise<void> {
  const onAbort = () => listener.close();
  services.stopping.addEventListener("abort", onAbort, { once: true });
  const sessions = new Map<Session, Promise<void>>();
  const running = new Set<Promise<void>>();
  let nextId = 1;
  const refuse = (conn: Deno.Conn, text: string) => {
    const msg = new TextEncoder().encode(`421 ${text}\r\n`);
    conn.write(msg).catch(() => {}).finally(() => conn.close());
  };
  try {
    await acceptLoop(listener, (conn) => {
      // Refusals that concern the newcomer alone come first: they must not cost anyone a place.
      const address = (conn.remoteAddr as Deno.NetAddr).hostname;
      const perAddress = services.config.ftp.max_connections_per_address;
      if (services.sessions.fromAddress(address) >= perAddress) {
        return refuse(conn, `Too many connections from your address (max ${perAddress})`);
      }
      const banned = services.loginGuard.bannedFor(address);
      if (banned > 0) {
        return refuse(
          conn,
          `Too many failed logins from your address; try again in ${Math.ceil(banned / 1000)} s`,
        );
      }
      if (sessions.size >= services.config.ftp.max_connections && !makeRoom(sessions, address)) {
        return refuse(conn, "Too many connections; try again later");
      }
      // Replies are small: don't let Nagle hold them for the client's delayed ACK.
      (conn as Deno.TcpConn).setNoDelay?.(true);
      const session = new Session(conn, services, nextId++);
      services.sessions.add(session);
      services.metrics.sessions++;
      const p = session.run(dispatch, options).catch((e) =>
        log.error("Session {id} ended with an error: {error}", { id: session.id, error: String(e) })
      ).finally(() => services.sessions.delete(session));
      sessions.set(session, p);
      running.add(p);
      p.finally(() => {
        services.metrics.sessions--;
        sessions.delete(session);
        running.delete(p);
      });
    }, { signal: services.stopping, what: options.implicitTls ? "implicit FTPS" : "FTP" });
  } finally {
    services.stopping.removeEventListener("abort", onAbort);
    await Promise.allSettled(running);
  }
}

/**
 * Ends a session that has not logged in to make room for a newcomer from `address` (which one:
 * `admission.ts#evictionFor`); false if every session is logged in.
 */
function makeRoom(sessions: Map<Session, Promise<void>>, address: string): boolean {
  const waiting = [...sessions.keys()].filter((s) => s.user === null && !s.closed);
  const s = evictionFor(waiting, address);
  if (s === null) return false;
  s.reply(NOT_AVAILABLE_CLOSING, "Too many connections; closing one not logged in")
    .finally(() => s.close());
  sessions.delete(s);
  return true;
}
