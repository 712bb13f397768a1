/**
 * The master's side of the slave link: accepts slaves, checks their proof of the shared secret,
 * runs the remerge, the heartbeat, and routes replies and events to the slave's handle.
 *
 * Remerge: the master asks for it (`remerge_request`). With `partialRemerge` and a completed
 * remerge on record, it asks only for the directories changed since that remerge's scan
 * started (slave clock); after that pass it asks for the subtrees the filelist knows nothing
 * of this slave under (see `Remerge.takeRescans`), then finishes and marks the slave online.
 * Without a record (new slave, fresh KV) or with `partial_remerge = false` it asks for everything.
 *
 * What a partial remerge trades for speed (DrFTPD's `partial.remerge` has the same limits):
 * - a file rewritten in place (same name, new size) in a directory whose own mtime and ctime did
 *   not change since the last remerge keeps its recorded size until a full remerge;
 * - directory timestamps must not lag the slave's clock by more than 2 s (a network file system
 *   whose server clock is behind): such changes are missed the same way; a slave clock now
 *   more than 2 s behind `since` is noticed by the slave, which then sends everything;
 * - a file deleted from a directory that was renamed in the filelist while the slave was offline
 *   stays recorded on it (the rename targets are never taken off by a listing).
 * Directories the slave did not list keep their holders untouched: nothing else is ever removed
 * on a guess.
 */
import { getLogger } from "@logtape/logtape";
import { acceptLoop } from "../../shared/accept.ts";
import { type OpenSsl, TlsHandshakeError, upgradeToTlsServer } from "../../shared/tls/mod.ts";
import { FrameConn, masterProof, newNonce, proofsEqual, slaveProof } from "../../shared/link.ts";
import {
  type AuthMsg,
  HEARTBEAT_MS,
  MAX_FRAME_BYTES,
  MAX_RESCAN_PATHS,
  parseFromSlave,
  PEER_TIMEOUT_MS,
  PROTOCOL_VERSION,
} from "../../shared/protocol.ts";
import type { Filelist, Remerge } from "../filelist/types.ts";
import { type NamespaceOp, type QueuedOp, rewritePath, touchedByRename } from "./op_queue.ts";
import type { SlaveRegistry } from "./registry.ts";
import { SlaveHandle, SlaveReplyError } from "./slave_handle.ts";
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
): Promise<{ link: FrameConn; auth: AuthMsg } | null> {
  const ms = options.handshakeMs ?? HANDSHAKE_MS;
  let link: FrameConn | null = null;
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
    link = new FrameConn(secured);
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
    const slave = new SlaveHandle(auth.name, link, remote, local);
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
    try {
      await serveSlave(slave, link, options);
    } finally {
      slave.close();
      await options.registry.detach(slave);
      log.warn("Slave {name} disconnected", { name: slave.name });
    }
  } finally {
    options.signal.removeEventListener("abort", onAbort);
  }
}

async function handshake(link: FrameConn, remote: string, secret: string): Promise<AuthMsg | null> {
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

/** One remerge of a slave in progress. */
interface RemergeRun {
  remerge: Remerge;
  /** For the logs: "full", "partial (changed since …)", "full (asked for)". */
  mode: string;
  /** The remerge every (re)connect runs (else one asked for while the slave is online). */
  onConnect: boolean;
  /** Live list: queued changes the slave missed, then every change made while this runs. */
  ops: NamespaceOp[];
  started: number;
  /** The slave-clock start of the first pass: the next `since`. */
  scannedAt: number | null;
  rescans: number;
  seen: number;
  nextLog: number;
}

async function serveSlave(slave: SlaveHandle, link: FrameConn, options: LinkServerOptions) {
  const heartbeat = setInterval(() => {
    if (Date.now() - slave.lastHeard > PEER_TIMEOUT_MS) {
      log.error("Slave {name} silent for {ms} ms; declaring it gone", {
        name: slave.name,
        ms: Date.now() - slave.lastHeard,
      });
      slave.close();
      return;
    }
    slave.send({ type: "ping", t: Date.now() }).catch(() => slave.close());
  }, HEARTBEAT_MS);
  let run: RemergeRun | null = null;
  try {
    const queued = await options.registry.queue.list(slave.name);
    const since = options.partialRemerge === false
      ? 0
      : await options.filelist.remergeSince(slave.name);
    run = await startRemerge(slave, link, options, {
      since,
      onConnect: true,
      ops: queued.map((q) => q.op),
    });
    slave.setRemergeStarter(async () => {
      if (run !== null) throw new Error(`A remerge of ${slave.name} is already running`);
      run = await startRemerge(slave, link, options, { since: 0, onConnect: false, ops: [] });
    });
    for (;;) {
      const raw = await link.read();
      if (raw === null) return;
      slave.lastHeard = Date.now();
      const msg = parseFromSlave(raw);
      switch (msg.type) {
        case "reply":
          slave.resolveReply(msg.id, msg.data);
          break;
        case "error":
          slave.rejectReply(msg);
          break;
        case "ping":
          break;
        case "disk":
          slave.disk = { free: msg.free, total: msg.total };
          break;
        case "progress":
          slave.progress(msg);
          break;
        case "remerge": {
          if (!run) throw new Error("remerge batch while no remerge runs");
          const ops = run.ops;
          // Awaiting here applies back-pressure: the slave's batches wait in TCP buffers.
          await run.remerge.add(
            ops.length === 0 ? msg.entries : msg.entries.flatMap((e) => {
              const path = rewritePath(e.path, ops);
              return path === null ? [] : [{ ...e, path }];
            }),
            msg.dirs ?? [],
          );
          run.seen += msg.entries.length;
          if (run.seen >= run.nextLog) {
            log.info("Remerge of {name}: {seen} files so far", {
              name: slave.name,
              seen: run.seen,
            });
            run.nextLog += 10_000;
          }
          break;
        }
        case "remerge_done": {
          if (!run) throw new Error("remerge_done while no remerge runs");
          run.scannedAt ??= msg.scannedAt;
          const paths = run.remerge.partial ? run.remerge.takeRescans(MAX_RESCAN_PATHS) : [];
          if (paths.length > 0) {
            // New or moved-in directories: have their whole subtrees listed before finishing.
            run.rescans += paths.length;
            log.info("Remerge of {name}: asking for {n} subtrees the filelist does not know", {
              name: slave.name,
              n: paths.length,
            });
            await link.write({ type: "remerge_request", since: 0, paths });
            break;
          }
          const done = run;
          const stats = await done.remerge.finish(done.scannedAt ?? msg.scannedAt);
          run = null;
          slave.trackChanges(null);
          if (done.onConnect) {
            options.registry.markOnline(slave);
            // reread: an operation may have been queued for this slave while it remerged
            options.registry.queue.list(slave.name)
              .then((q) => replayQueue(slave, q, options))
              .catch((e) =>
                log.warn("Replaying missed operations on {name} failed: {error}", {
                  name: slave.name,
                  error: String(e),
                })
              );
          }
          log.info(
            "Slave {name} {state}: {mode} remerge of {files} files in {ms} ms (added {added}, removed {removed}, dropped {dropped}, resized {resized}, conflicts {conflicts}, listed folders {listed}, rescanned subtrees {rescans}, pruned folders {pruned})",
            {
              name: slave.name,
              state: done.onConnect ? "online" : "remerged",
              mode: done.mode,
              files: done.seen,
              ms: Math.round(performance.now() - done.started),
              rescans: done.rescans,
              ...stats,
            },
          );
          break;
        }
        case "auth":
          throw new Error("auth after handshake");
      }
    }
  } catch (e) {
    if (slave.state !== "gone" && !options.signal.aborted) {
      log.error("Dropping slave {name}: {error}", { name: slave.name, error: String(e) });
    }
  } finally {
    clearInterval(heartbeat);
    slave.setRemergeStarter(null);
    slave.trackChanges(null);
  }
}

/**
 * Begins a remerge and asks the slave for its inventory. From this call on, the master's
 * namespace changes are collected in `ops` (see `SlaveHandle.trackChanges`): batches are
 * rewritten through them, and paths a rename touched are never taken off the slave.
 */
async function startRemerge(
  slave: SlaveHandle,
  link: FrameConn,
  options: LinkServerOptions,
  run: { since: number; onConnect: boolean; ops: NamespaceOp[] },
): Promise<RemergeRun> {
  const { since, onConnect, ops } = run;
  slave.trackChanges(ops);
  const remerge = await options.filelist.beginRemerge(slave.name, {
    partial: since > 0,
    protect: (path: string) => touchedByRename(path, ops),
  });
  const mode = since > 0
    ? `partial (changed since ${new Date(since).toISOString()})`
    : onConnect
    ? "full"
    : "full (asked for)";
  await link.write({ type: "remerge_request", since });
  log.info("Remerge of {name}: asked for a {mode} inventory", { name: slave.name, mode });
  return {
    remerge,
    mode,
    onConnect,
    ops,
    started: performance.now(),
    scannedAt: null,
    rescans: 0,
    seen: 0,
    nextLog: 10_000,
  };
}

/** Applies the deletes and renames a slave missed while offline, oldest first. */
async function replayQueue(
  slave: SlaveHandle,
  queued: readonly { key: Deno.KvKey; op: QueuedOp }[],
  options: LinkServerOptions,
): Promise<void> {
  for (const { key, op } of queued) {
    try {
      if (op.op === "delete") await slave.request({ type: "delete", path: op.path });
      else await slave.request({ type: "rename", from: op.from, to: op.to });
    } catch (e) {
      if (!(e instanceof SlaveReplyError) || (e.code !== "not_found" && e.code !== "not_a_file")) {
        throw e;
      }
    }
    await options.registry.queue.done(key);
  }
  if (queued.length > 0) {
    log.info("Replayed {n} missed operations on {name}", { n: queued.length, name: slave.name });
  }
}
