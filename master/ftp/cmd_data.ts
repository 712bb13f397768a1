/**
 * Preparing data connections: REST, PRET, PASV, EPSV, PORT, EPRT, ABOR.
 *
 * PRET state survives other commands (TYPE, SIZE, REST, a failed EPSV…) until a transfer
 * command consumes it, or a new PRET, PORT/EPRT or ABOR replaces it.
 */
import { getLogger } from "@logtape/logtape";
import {
  formatEpsvReply,
  formatPasvReply,
  isIPv4,
  parseEprtArg,
  parseEpsvArg,
  parsePortArg,
  parseRestArg,
  unmapIPv4,
} from "./codecs.ts";
import { PASSIVE_ACCEPT_MS, PassiveChannel } from "./data_channel.ts";
import { FtpError } from "./errors.ts";
import { PasvProxy } from "./pasv_proxy.ts";
import type { DataPlan, Pret, Session } from "./session.ts";
import { type SlaveHandle, SlaveUnresponsiveError } from "../slaves/slave_handle.ts";
import { NoSlaveError } from "../slaves/selection.ts";
import { parentOf } from "../../shared/paths.ts";
import { canonicalHost, sameHost } from "../../shared/net.ts";
import {
  BAD_SEQUENCE,
  CANT_OPEN_DATA,
  CLOSING_DATA,
  DATA_OPEN_NO_TRANSFER,
  ENTERING_EXT_PASSIVE,
  ENTERING_PASSIVE,
  FILE_UNAVAILABLE,
  NOT_IMPLEMENTED_FOR_PARAM,
  OK,
  PENDING_MORE_INFO,
  SYNTAX_ERROR,
  SYNTAX_ERROR_ARGS,
} from "./replies.ts";

const log = getLogger(["drftpd", "master", "ftp"]);

/** REST */
export async function rest(s: Session, arg: string): Promise<void> {
  s.rest = parseRestArg(arg.trim());
  await s.reply(PENDING_MORE_INFO, `Restarting at ${s.rest}; send RETR, STOR or APPE`);
}

/**
 * PRET <verb> [arg], as `commands.ts` parsed it from the table: `kind` is the row's PRET kind,
 * `path` its normalised target, `named` whether the argument named a path.
 */
export async function pret(
  s: Session,
  p: { verb: string; kind: "download" | "upload" | "list"; path: string; named: boolean },
): Promise<void> {
  s.clearData();
  if (p.kind === "download") {
    const e = await s.services.filelist.get(p.path);
    if (!e) throw new FtpError(FILE_UNAVAILABLE, `No such file: ${p.path}`);
    if (e.kind !== "file") throw new FtpError(FILE_UNAVAILABLE, `Not a plain file: ${p.path}`);
  } else if (p.kind === "upload" && !p.named) {
    throw new FtpError(SYNTAX_ERROR_ARGS, `PRET ${p.verb} needs a file name`);
  }
  s.pret = { verb: p.verb, kind: p.kind, path: p.path };
  const where = p.kind === "list" ? "master" : "a slave";
  await s.reply(OK, `OK, ${where} will serve the upcoming ${p.verb}`);
}

/** Picks the slave for a PRET'd file transfer. */
async function slaveForPret(s: Session, p: Pret): Promise<SlaveHandle> {
  // A client whose EPSV was refused asks again with PASV: keep the first choice.
  if (p.chosen?.available) return p.chosen;
  const e = await s.services.filelist.get(p.path);
  const file = e?.kind === "file" ? e : null;
  if (p.kind === "download" && !file) {
    throw new FtpError(FILE_UNAVAILABLE, `No such file: ${p.path}`);
  }
  p.chosen = s.services.slaves.choose({
    kind: p.kind === "download" ? "download" : "upload",
    path: p.path,
    holders: file?.slaves ?? [],
    resuming: p.verb === "APPE" || s.rest > 0,
  });
  return p.chosen;
}

/** Asks the PRET'd slave to listen; returns the plan and the address to announce. */
async function slavePassive(
  s: Session,
  p: Pret,
): Promise<
  { plan: DataPlan & { kind: "slave" }; host: string; port: number; peer: string | null }
> {
  let slave = await slaveForPret(s, p);
  const xfer = crypto.randomUUID();
  const peer = await passivePeer(s, p.kind === "upload" ? "fxp_upload" : "fxp_download", p.path);
  let opened: { host: string; port: number };
  try {
    opened = await slave.request("listen", { xfer, peer });
  } catch (e) {
    // A slave that stopped answering is passed over from now on: ask the next choice once.
    if (!(e instanceof SlaveUnresponsiveError)) throw e;
    delete p.chosen;
    const next = await slaveForPret(s, p);
    if (next === slave) throw e;
    slave = next;
    opened = await slave.request("listen", { xfer, peer });
  }
  const { host, port } = opened;
  const plan: DataPlan & { kind: "slave" } = { kind: "slave", slave, xfer, pret: p };
  return { plan, host, port, peer };
}

/**
 * Who may connect to a passive port prepared for `s`: the client's own address (the usual case),
 * or anyone (null) when FXP (`action`) is allowed for `path` and the session asked for FXP
 * explicitly; with `action` null (the path is not known yet) only the global switch decides.
 * Security: a passive port open to anyone lets whoever connects first take the download (or feed
 * the upload) of a client that did not mean to do FXP.
 */
async function passivePeer(
  s: Session,
  action: "fxp_upload" | "fxp_download" | null,
  path: string | null,
): Promise<string | null> {
  if (!s.fxpAsked) return s.remoteHost;
  const open = action ? await s.may(action, path) : await fxpPossible(s);
  return open ? null : s.remoteHost;
}

/**
 * Whether a third party may be the data peer before the transfer's path is known (only the
 * global FXP switch can decide then).
 */
async function fxpPossible(s: Session): Promise<boolean> {
  return await s.may("fxp_download", null) || await s.may("fxp_upload", null);
}

/** Opens a passive port on the master (listings, relay). */
async function masterPassive(s: Session): Promise<PassiveChannel> {
  return new PassiveChannel(
    s.localHost,
    s.services.config.ftp.passive_ports,
    await passivePeer(s, null, null),
  );
}

function requirePretOrRelay(s: Session, verb: string): void {
  if (!s.pret && s.services.config.ftp.pasv_without_pret === "reject") {
    throw new FtpError(
      SYNTAX_ERROR,
      `${verb} needs PRET first on this server: send "PRET RETR <file>" (or STOR, LIST…) before ${verb}`,
    );
  }
}

/**
 * Passive ports (master's or slaves') one client address may hold prepared but unused: a quarter
 * of the master's passive range, at least 4.
 */
export function passivePerAddress(range: { from: number; to: number }): number {
  return Math.max(4, Math.floor((range.to - range.from + 1) / 4));
}

/**
 * Security: each session holds at most one prepared data connection, and the sessions of one
 * address, like those of one user (logged in from any addresses), at most `passivePerAddress`
 * passive ports, so a few clients that PASV and never transfer cannot take every port of the
 * range (one unused for 60 s no longer counts: its port has closed). Only logged-in sessions can
 * prepare one, so rotating addresses without an account hold none.
 */
function checkPassiveQuota(s: Session): void {
  const max = passivePerAddress(s.services.config.ftp.passive_ports);
  const host = canonicalHost(s.remoteHost);
  const user = s.user?.name;
  let byAddress = 0;
  let byUser = 0;
  const since = performance.now() - PASSIVE_ACCEPT_MS;
  for (const other of s.services.sessions.all()) {
    const d = other.data;
    if (other === s || d === null || d.kind === "active" || (d.preparedAt ?? 0) < since) continue;
    if (canonicalHost(other.remoteHost) === host) byAddress++;
    if (user !== undefined && other.user?.name === user) byUser++;
  }
  if (byAddress >= max) {
    throw new FtpError(
      CANT_OPEN_DATA,
      `Your address already holds ${byAddress} passive ports (at most ${max}): use or close them first`,
    );
  }
  if (byUser >= max) {
    throw new FtpError(
      CANT_OPEN_DATA,
      `User ${user} already holds ${byUser} passive ports (at most ${max}) from other connections: use or close them first`,
    );
  }
}

/** Runs a PASV/EPSV and remembers when the passive plan it prepared was made. */
async function preparing(s: Session, prepare: () => Promise<void>): Promise<void> {
  await prepare();
  if (s.data !== null && s.data.kind !== "active") s.data.preparedAt = performance.now();
}

/**
 * Listens on the slave's passive port number at the master's control address, for clients that
 * ignore the 227 address (`pasv_proxy.ts`); the bytes it pipes count as relayed. Throws when
 * that port is taken here.
 */
function pasvProxy(
  s: Session,
  target: { host: string; port: number },
  peer: string | null,
  label: string,
): PasvProxy {
  const { metrics } = s.services;
  return new PasvProxy({ hostname: s.localHost, port: target.port }, target, {
    peer,
    label,
    onBytes: (n) => metrics.relayed("pasv_proxy", n),
  });
}

/** PASV */
export function pasv(s: Session): Promise<void> {
  return preparing(s, () => pasvPlan(s));
}

async function pasvPlan(s: Session): Promise<void> {
  if (s.epsvAll) throw new FtpError(BAD_SEQUENCE, "EPSV ALL was sent; only EPSV is allowed");
  requirePretOrRelay(s, "PASV");
  s.clearData();
  checkPassiveQuota(s);
  if (s.pret && s.pret.kind !== "list") {
    const { plan, host, port, peer } = await slavePassive(s, s.pret);
    if (!isIPv4(unmapIPv4(host))) {
      plan.slave.request("abort", { xfer: plan.xfer }).catch(() => {});
      throw new FtpError(
        CANT_OPEN_DATA,
        `Slave ${plan.slave.name} has no IPv4 address for PASV; use EPSV`,
      );
    }
    if (!sameHost(host, s.localHost)) {
      // For clients that ignore the 227 address and connect to the control host instead.
      try {
        plan.proxy = pasvProxy(s, { host, port }, peer, `${s.who} ${s.pret.verb} ${s.pret.path}`);
      } catch {
        // that port is taken here: such clients will fail to connect, PRET-aware ones are fine
      }
    }
    s.data = plan;
    log.debug("{who}: PASV via slave {slave} at {host}:{port}", {
      who: s.who,
      slave: plan.slave.name,
      host,
      port,
    });
    await s.reply(ENTERING_PASSIVE, formatPasvReply(unmapIPv4(host), port));
    return;
  }
  if (!s.pret && await pasvWithoutPret(s)) return;
  const announce = unmapIPv4(s.services.config.ftp.public_address || s.localHost);
  if (!isIPv4(announce)) {
    throw new FtpError(CANT_OPEN_DATA, "No IPv4 address to announce; use EPSV");
  }
  const channel = await masterPassive(s);
  s.data = { kind: "master", channel };
  await s.reply(ENTERING_PASSIVE, formatPasvReply(announce, channel.port));
}

/**
 * The slave that answers a PASV/EPSV without PRET, or null for the master's own port (relay,
 * listings). With `pasv_without_pret = "slave"` it is chosen from what the session looked at
 * last ({@link hintedSlave}); with "relay" only when exactly one slave is available (it is then
 * the only one that can serve whatever comes next).
 */
async function slaveWithoutPret(s: Session): Promise<SlaveHandle | null> {
  const avail = s.services.slaves.connected().filter((x) => x.available);
  if (avail.length === 0) return null;
  if (s.services.config.ftp.pasv_without_pret !== "slave") {
    return avail.length === 1 ? avail[0]! : null;
  }
  return await hintedSlave(s, avail.map((x) => x.name));
}

/**
 * The slave for a transfer not announced by PRET, from the session's hint (the file or folder
 * of its last SIZE, MDTM, MLST, CWD or CDUP; else the cwd): the least busy holder of that file,
 * else the best slave for an upload into its folder, else (no room anywhere) any available one,
 * which can still send listings and the files it holds.
 */
async function hintedSlave(s: Session, available: string[]): Promise<SlaveHandle> {
  const { slaves, filelist } = s.services;
  const path = s.hint ?? s.cwd;
  const e = await filelist.get(path);
  const want = (kind: "download" | "upload", at: string, holders: readonly string[]) => {
    try {
      return slaves.choose({ kind, path: at, holders, resuming: false });
    } catch (err) {
      if (err instanceof NoSlaveError) return null;
      throw err;
    }
  };
  const dir = e?.kind === "dir" ? path : parentOf(path);
  return (e?.kind === "file" ? want("download", path, e.slaves) : null) ??
    want("upload", dir, []) ??
    slaves.choose({ kind: "download", path: dir, holders: available, resuming: false });
}

/**
 * Asks the slave for a PASV/EPSV without PRET to listen (null: none, use the master's port).
 * Its plan serves any transfer command: listings the master generates, the files it holds,
 * uploads (`transfers.ts`).
 */
async function slavePassiveWithoutPret(
  s: Session,
  verb: "PASV" | "EPSV",
): Promise<
  { plan: DataPlan & { kind: "slave" }; host: string; port: number; peer: string | null } | null
> {
  const slave = await slaveWithoutPret(s);
  if (!slave) return null;
  const xfer = crypto.randomUUID();
  // Security: the transfer's path is unknown yet, so per-path FXP rules cannot be checked:
  // with any rule configured, only the client itself may connect.
  const peer = s.services.config.ftp.fxp_rules.length === 0
    ? await passivePeer(s, null, null)
    : s.remoteHost;
  let opened: { host: string; port: number };
  try {
    opened = await slave.request("listen", { xfer, peer });
  } catch (e) {
    // A slave that stopped answering is passed over from now on: the master's port serves.
    if (e instanceof SlaveUnresponsiveError) return null;
    throw e;
  }
  const { host, port } = opened;
  const pret: Pret = { verb, kind: "any", path: "" };
  return { plan: { kind: "slave", slave, xfer, pret }, host, port, peer };
}

/**
 * Times PASV without PRET asks the chosen slave for another port when the master's own port of
 * that number (where clients that ignore the 227 address connect) is taken, e.g. by the proxy of
 * another slave's transfer on the same port number.
 */
const PROXY_PORT_TRIES = 3;

/** PASV without PRET answered by a slave; returns false to fall back to the master's port. */
async function pasvWithoutPret(s: Session): Promise<boolean> {
  for (let attempt = 1;; attempt++) {
    const got = await slavePassiveWithoutPret(s, "PASV");
    if (!got) return false;
    const { plan, host, port, peer } = got;
    const { slave, xfer } = plan;
    if (!isIPv4(unmapIPv4(host))) {
      slave.request("abort", { xfer }).catch(() => {});
      return false;
    }
    if (!sameHost(host, s.localHost)) {
      try {
        plan.proxy = pasvProxy(s, { host, port }, peer, `${s.who} (no PRET)`);
      } catch {
        // That port number is taken on the master: ask the slave for another one (it picks at
        // random), and only after that relay, so clients that ignore the 227 address still work.
        slave.request("abort", { xfer }).catch(() => {});
        if (attempt < PROXY_PORT_TRIES) continue;
        log.info("{who}: PASV without PRET relayed: port {port} taken on the master {n} times", {
          who: s.who,
          port,
          n: attempt,
        });
        return false;
      }
    }
    await answerSlavePasv(s, plan, host, port);
    return true;
  }
}

/** Answers 227 with the slave's address for a PASV without PRET it listens for. */
async function answerSlavePasv(
  s: Session,
  plan: DataPlan & { kind: "slave" },
  host: string,
  port: number,
): Promise<void> {
  const { slave } = plan;
  s.data = plan;
  log.debug("{who}: PASV without PRET via slave {slave} at {host}:{port}", {
    who: s.who,
    slave: slave.name,
    host,
    port,
  });
  await s.reply(ENTERING_PASSIVE, formatPasvReply(unmapIPv4(host), port));
}

/**
 * EPSV without PRET with `pasv_without_pret = "slave"`: served by the chosen slave when it answers
 * on the control connection's host (EPSV carries no address). Otherwise 425, on which clients
 * fall back to PASV: curl sends PASV after any failed EPSV on an IPv4 connection ("Failed
 * EPSV attempt. Disabling EPSV", lib/ftp.c `ftp_epsv_disable`); ftplib, wget and lftp use PASV
 * on IPv4 in the first place. Returns
 * false to use the master's port (no slave, or an IPv6 control connection, where PASV is no way
 * out). With `epsv_without_pret = "master"` a slave on another address is not tried: the
 * master serves the EPSV and relays (tnftp, after a refused EPSV, refuses a 227 that names another
 * host than the control connection's: "Passive mode address mismatch").
 */
async function epsvWithoutPret(s: Session): Promise<boolean> {
  if (s.services.config.ftp.pasv_without_pret !== "slave") return false;
  if (!isIPv4(unmapIPv4(s.localHost))) return false;
  const got = await slavePassiveWithoutPret(s, "EPSV");
  if (!got) return false;
  const { plan, host, port } = got;
  if (!sameHost(host, s.localHost)) {
    plan.slave.request("abort", { xfer: plan.xfer }).catch(() => {});
    if (s.services.config.ftp.epsv_without_pret === "master") return false;
    throw new FtpError(
      CANT_OPEN_DATA,
      `EPSV cannot point at slave ${plan.slave.name} (${host}); use PASV`,
    );
  }
  s.data = plan;
  await s.reply(ENTERING_EXT_PASSIVE, formatEpsvReply(port));
  return true;
}

/** EPSV [ALL|1|2] */
export function epsv(s: Session, arg: string): Promise<void> {
  return preparing(s, () => epsvPlan(s, arg));
}

async function epsvPlan(s: Session, arg: string): Promise<void> {
  const a = parseEpsvArg(arg.trim());
  if (a.kind === "all") {
    s.epsvAll = true;
    await s.reply(OK, "EPSV ALL accepted");
    return;
  }
  requirePretOrRelay(s, "EPSV");
  s.clearData();
  checkPassiveQuota(s);
  if (s.pret && s.pret.kind !== "list") {
    const { plan, host, port } = await slavePassive(s, s.pret);
    // EPSV carries no address: the client will connect to the control connection's host.
    if (!sameHost(host, s.localHost)) {
      plan.slave.request("abort", { xfer: plan.xfer }).catch(() => {});
      throw new FtpError(
        CANT_OPEN_DATA,
        `EPSV cannot point at slave ${plan.slave.name} (${host}); use PASV (the PRET stays valid)`,
      );
    }
    s.data = plan;
    await s.reply(ENTERING_EXT_PASSIVE, formatEpsvReply(port));
    return;
  }
  if (!s.pret && await epsvWithoutPret(s)) return;
  const channel = await masterPassive(s);
  s.data = { kind: "master", channel };
  await s.reply(ENTERING_EXT_PASSIVE, formatEpsvReply(channel.port));
}

async function checkActiveTarget(s: Session, host: string, port: number): Promise<void> {
  // Security: never let PORT/EPRT aim at a privileged port (FTP bounce attack).
  if (port < 1024) {
    throw new FtpError(SYNTAX_ERROR_ARGS, `Refusing a data connection to privileged port ${port}`);
  }
  if (s.epsvAll) throw new FtpError(BAD_SEQUENCE, "EPSV ALL was sent; PORT/EPRT are not allowed");
  // Security: a data connection to another host than the client's is FXP (or a bounce attack).
  if (sameHost(host, s.remoteHost)) return;
  if (!await fxpPossible(s)) {
    throw new FtpError(
      NOT_IMPLEMENTED_FOR_PARAM,
      `FXP is not allowed: data connections go only to your own address ${s.remoteHost}, not ${host}`,
    );
  }
  // A transfer whose peer is another server: this session does FXP on purpose.
  s.fxpAsked = true;
}

/** PORT h1,h2,h3,h4,p1,p2 */
export function port(s: Session, arg: string): Promise<void> {
  return prepareActive(s, "PORT", parsePortArg(arg.trim()));
}

/** EPRT |af|addr|port| */
export function eprt(s: Session, arg: string): Promise<void> {
  return prepareActive(s, "EPRT", parseEprtArg(arg.trim()));
}

/** PORT and EPRT alike: check the target, then the next transfer dials it. */
async function prepareActive(
  s: Session,
  verb: "PORT" | "EPRT",
  t: { host: string; port: number },
): Promise<void> {
  await checkActiveTarget(s, t.host, t.port);
  s.clearData();
  s.pret = null;
  s.data = { kind: "active", host: t.host, port: t.port };
  await s.reply(OK, `${verb} ok: data connection to ${t.host}:${t.port}`);
}

/** ABOR: interrupts a running transfer (which answers 426) or drops a prepared one. */
export async function abor(s: Session): Promise<void> {
  const t = s.transfer;
  s.pret = null;
  s.rest = 0;
  if (t) {
    t.abort();
    await t.done.catch(() => {});
    await s.reply(CLOSING_DATA, "Abort successful");
    return;
  }
  s.clearData();
  await s.reply(DATA_OPEN_NO_TRANSFER, "No transfer to abort");
}
