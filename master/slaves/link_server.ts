/**
 * The master's side of the slave link: accepts slaves, checks their proof of the shared secret,
 * registers them and runs each connection until it ends.
 *
 * The connection itself (read loop, requests, heartbeat) is `slave_handle.ts`; the remerge it
 * drives is `remerge_run.ts`.
 */
import { getLogger } from "@logtape/logtape";
import { acceptLoop } from "../../shared/accept.ts";
import { type OpenSsl, TlsHandshakeError, upgradeToTlsServer } from "../../shared/tls/mod.ts";
import { FrameConn, masterProof, newNonce, proofsEqual, slaveProof } from "../../shared/link.ts";
import {
  type AuthMsg,
  type FromMaster,
  MAX_FRAME_BYTES,
  parseFromSlave,
  PROTOCOL_VERSION,
} from "../../shared/protocol.ts";
import type { Filelist } from "../filelist/types.ts";
import type { SlaveRegistry } from "./registry.ts";
import { SlaveRemerge } from "./remerge_run.ts";
import { type SilenceLimits, SlaveHandle } from "./slave_handle.ts";
import { closeQuietly } from "../../shared/net.ts";

const log = getLogger(["drftpd", "master", "link"]);

/** Default of how long a connecting slave has to finish TLS and the handshake (ms). */
const HANDSHAKE_MS = 10_000;

/** Connections still in their handshake at once; more are closed at accept. */
export const MAX_PENDING_LINKS = 16;

/** Largest frame read from a peer that has not authenticated yet (an `auth` is ~300 bytes). */
const PRE_AUTH_FRAME_BYTES = 4096;

/** What the link server needs. */
export interface LinkServerOptions {
  secret: string;
  registry: SlaveRegistry;
  filelist: Filelist;
  signal: AbortSignal;
  /** Session-ticket secret shared with slaves (null when TLS is off). */
  ticketSecret: Uint8Array | null;
  /** Run the link over TLS with this certificate (the listener is plain TCP); null = clear. */
  tls?: { cert: string; key: string; engine?: OpenSsl } | null;
  /** Milliseconds a connection has to finish TLS and prove the secret (default 10 000). */
  handshakeMs?: number;
  /**
   * Ask a reconnecting slave only for the directories changed since its last completed remerge
   * (`[slaves] partial_remerge`). Default true.
   */
  partialRemerge?: boolean;
  /** When a silent slave is passed over and when it is dropped (`[slaves] unresponsive_after`, `drop_after`). */
  silence?: SilenceLimits;
}

/**
 * Accepts slave links on `listener` (plain TCP) until `signal` aborts.
 *
 * Security: a connection has `handshakeMs` to finish TLS and prove the secret and is closed when
 * that passes; at most `MAX_PENDING_LINKS` are in that state at once (more are closed at
 * accept), and it may send only small frames until it has proved itself. The TLS handshake
 * runs on the accepted TCP socket here, not in `Deno.listenTls`, whose connections stay open
 * after `close()` while the handshake waits for a ClientHello that never comes.
 */
export async function serveSlaveLinks(
  listener: Deno.Listener,
  options: LinkServerOptions,
): Promise<void> {
  const onAbort = () => listener.close();
  options.signal.addEventListener("abort", onAbort, { once: true });
  const running = new Set<Promise<void>>();
  let pending = 0;
  let refused = 0;
  try {
    await acceptLoop(listener, (conn) => {
      if (pending >= MAX_PENDING_LINKS) {
        if (refused++ % 1000 === 0) {
          log.warn(
            "{n} slave link connections are still in their handshake; closing new ones ({refused} so far)",
            { n: pending, refused },
          );
        }
        closeQuietly(conn);
        return;
      }
      pending++;
      let proven = false;
      const onProven = () => {
        if (!proven) pending--;
        proven = true;
      };
      const p = handleLink(conn, options, onProven).catch((e) =>
        log.error("Slave link error: {error}", { error: String(e) })
      ).finally(onProven);
      running.add(p);
      p.finally(() => running.delete(p));
    }, { signal: options.signal, what: "slave link" });
  } finally {
    options.signal.removeEventListener("abort", onAbort);
    await Promise.allSettled(running);
  }
}

function addrOf(a: Deno.Addr): string {
  return a.transport === "tcp" || a.transport === "udp" ? a.hostname : String(a.transport);
}

/**
 * TLS (when configured) and the handshake within `ms`: the connection is closed when the
 * deadline passes, whatever it is waiting for. Null when the peer did not prove itself.
 */
async function admit(
  conn: Deno.Conn,
  remote: string,
  options: LinkServerOptions,
): Promise<{ link: FrameConn<FromMaster>; auth: AuthMsg } | null> {
  const ms = options.handshakeMs ?? HANDSHAKE_MS;
  let link: FrameConn<FromMaster> | null = null;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    closeQuietly(conn);
    link?.close();
  }, ms);
  try {
    const tls = options.tls;
    const secured = tls
      ? await upgradeToTlsServer(conn, {
        cert: tls.cert,
        key: tls.key,
        ...(tls.engine ? { engine: tls.engine } : {}),
        handshakeTimeoutMs: ms,
        signal: options.signal,
      })
      : conn;
    link = new FrameConn<FromMaster>(secured);
    if (timedOut) link.close();
    link.maxReadBytes = PRE_AUTH_FRAME_BYTES;
    const auth = await handshake(link, remote, options.secret);
    if (auth === null) {
      link.close();
      return null;
    }
    link.maxReadBytes = MAX_FRAME_BYTES;
    return { link, auth };
  } catch (e) {
    link?.close();
    closeQuietly(conn);
    if (timedOut || e instanceof TlsHandshakeError) {
      log.info("Link connection from {remote} closed: {why}", {
        remote,
        why: timedOut ? `no handshake within ${ms} ms` : (e as Error).message,
      });
      return null;
    }
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

async function handleLink(
  conn: Deno.Conn,
  options: LinkServerOptions,
  onProven: () => void,
): Promise<void> {
  (conn as Deno.TcpConn).setNoDelay?.(true);
  const remote = addrOf(conn.remoteAddr);
  const local = addrOf(conn.localAddr);
  const admitted = await admit(conn, remote, options);
  onProven();
  if (!admitted) return;
  const { auth } = admitted;
  using link = admitted.link;
  const onAbort = () => link.close();
  options.signal.addEventListener("abort", onAbort, { once: true });
  try {
    const slave = new SlaveHandle(auth.name, link, remote, local, options.silence);
    if (!(await options.registry.attach(slave))) {
      log.warn("Refused slave {name} from {remote}: a slave of that name is already online", {
        name: auth.name,
        remote,
      });
      await link.write({
        type: "refused",
        reason: `A slave named "${auth.name}" is already online`,
      })
        .catch(() => {});
      return;
    }
    await link.write({ type: "welcome", mac: masterProof(options.secret, auth.nonce, auth.name) });
    if (options.ticketSecret) {
      await link.write({
        type: "tls_keys",
        ticketSecret: btoa(String.fromCharCode(...options.ticketSecret)),
      });
    }
    log.info("Slave {name} connected from {remote}; remerge starting", { name: auth.name, remote });
    const remerge = new SlaveRemerge(slave, {
      filelist: options.filelist,
      queue: options.registry.queue,
      markOnline: (s) => options.registry.markOnline(s),
      work: options.registry.work,
      ...(options.partialRemerge === undefined ? {} : { partialRemerge: options.partialRemerge }),
    });
    try {
      await slave.serve(remerge);
    } finally {
      slave.close();
      await options.registry.detach(slave);
      if (slave.leaving) log.info("Slave {name} left", { name: slave.name });
      else log.warn("Slave {name} disconnected", { name: slave.name });
    }
  } finally {
    options.signal.removeEventListener("abort", onAbort);
  }
}

async function handshake(
  link: FrameConn<FromMaster>,
  remote: string,
  secret: string,
): Promise<AuthMsg | null> {
  const nonce = newNonce();
  await link.write({ type: "hello", v: PROTOCOL_VERSION, nonce });
  const first = await link.read();
  if (first === null) return null;
  const msg = parseFromSlave(first);
  if (msg.type !== "auth") {
    log.warn("Slave at {remote} sent {type} instead of auth; dropped", { remote, type: msg.type });
    return null;
  }
  if (msg.v !== PROTOCOL_VERSION) {
    log.warn("Refused slave {name} from {remote}: protocol version {v}, expected {want}", {
      name: msg.name,
      remote,
      v: msg.v,
      want: PROTOCOL_VERSION,
    });
    await link.write({
      type: "refused",
      reason: `Protocol version ${msg.v} is not supported (master speaks ${PROTOCOL_VERSION})`,
    });
    return null;
  }
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(msg.name)) {
    await link.write({ type: "refused", reason: `Invalid slave name "${msg.name.slice(0, 64)}"` });
    return null;
  }
  if (!proofsEqual(msg.mac, slaveProof(secret, nonce, msg.name))) {
    log.error("Refused slave {name} from {remote}: wrong shared secret", {
      name: msg.name,
      remote,
    });
    await link.write({ type: "refused", reason: "Wrong shared secret" });
    return null;
  }
  return msg;
}
