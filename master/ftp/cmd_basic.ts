/**
 * Session-level commands: login, SYST, TYPE/MODE/STRU, PWD/CWD, STAT, SITE SLAVES/REMERGE.
 * (FEAT, HELP and SITE HELP are generated in `commands.ts`, which owns the table.)
 */
import { sleep } from "../../shared/timers.ts";
import { getLogger } from "@logtape/logtape";
import { VERSION } from "../../shared/version.ts";
import { loginRefusal, type User } from "../auth/users.ts";
import { visibleFilelist } from "../auth/visibility.ts";
import { normalize, parentOf } from "../../shared/paths.ts";
import { copyToSlave } from "../slaves/copy.ts";
import { parseTypeArg } from "./codecs.ts";
import { FtpError } from "./errors.ts";
import { formatListLine, listedEntries } from "./listing.ts";
import {
  BAD_SEQUENCE,
  CLOSING_CONTROL,
  FILE_ACTION_OK,
  FILE_STATUS,
  FILE_UNAVAILABLE,
  FILE_UNAVAILABLE_BUSY,
  LOGGED_IN,
  NOT_AVAILABLE_CLOSING,
  NOT_IMPLEMENTED_FOR_PARAM,
  NOT_LOGGED_IN,
  OK,
  PATH_CREATED,
  quotePath,
  SUPERFLUOUS,
  SYNTAX_ERROR_ARGS,
  SYSTEM_STATUS,
  SYSTEM_TYPE,
  USER_OK_NEED_PASSWORD,
} from "./replies.ts";
import type { Session } from "./session.ts";

const log = getLogger(["drftpd", "master", "ftp"]);

/** USER */
export async function user(s: Session, arg: string): Promise<void> {
  if (s.user) throw new FtpError(BAD_SEQUENCE, "Already logged in");
  // Security: with tls = "required" no password may cross the wire in the clear.
  if (!s.secure && s.services.config.ftp.tls === "required") {
    throw new FtpError(NOT_LOGGED_IN, "This server requires TLS: send AUTH TLS before USER");
  }
  s.pendingUser = arg.trim();
  await s.reply(USER_OK_NEED_PASSWORD, `Password required for ${s.pendingUser.slice(0, 64)}`);
}

/** PASS */
export async function pass(s: Session, arg: string): Promise<void> {
  if (s.user) throw new FtpError(BAD_SEQUENCE, "Already logged in");
  const name = s.pendingUser;
  if (name === null) throw new FtpError(BAD_SEQUENCE, "Send USER first");
  s.pendingUser = null;
  const guard = s.services.loginGuard;
  const cfg = s.services.config.ftp;
  if (guard.bannedFor(s.remoteHost) > 0) {
    // banned by failures on other connections: no more guesses through this one
    await s.reply(NOT_AVAILABLE_CLOSING, "Too many failed logins from your address; closing");
    s.quitting = true;
    return;
  }
  // Security: per account, whatever the address: one check at a time, slowed after failures,
  // locked after many; a locked account's attempts cost no hashing (see AccountGuard).
  const { result: found, locked, lockedNow } = await s.services.accountGuard.attempt(
    name,
    () => s.services.users.verify(name, arg),
    s.services.signal,
  );
  if (lockedNow) {
    log.warn("Account {name} locked for {seconds} s: {n} failed logins", {
      name: name.slice(0, 64),
      seconds: cfg.account_lock_seconds,
      n: cfg.account_lock_after,
    });
  }
  const why = locked
    ? `Account locked after too many failed logins; try again in ${
      Math.ceil(locked.waitMs / 1000)
    } s or ask an admin`
    : "Login incorrect";
  if (!found) {
    s.services.metrics.login("failed");
    s.loginFailures++;
    const banned = guard.fail(s.remoteHost);
    log.warn("Failed login for {name} from {ip}{why}", {
      name: name.slice(0, 64),
      ip: s.remoteHost,
      why: locked ? " (account locked, not checked)" : "",
    });
    if (banned) {
      log.warn("Refusing {ip} for up to {seconds} s: {n} failed logins", {
        ip: s.remoteHost,
        seconds: cfg.ban_seconds,
        n: cfg.ban_after_failures,
      });
    }
    await sleep(cfg.failed_login_delay_ms, s.services.signal); // shutdown does not wait
    if (banned || s.loginFailures >= cfg.max_login_failures) {
      await s.reply(
        NOT_LOGGED_IN,
        `${why}; too many failed logins ${
          banned ? "from your address" : "on this connection"
        }, closing`,
      );
      s.quitting = true;
      return;
    }
    throw new FtpError(NOT_LOGGED_IN, why);
  }
  // Security: only told once the password is right (it says the account exists).
  const refusal = loginRefusal(found, s.remoteHost, Date.now());
  if (refusal !== null) {
    s.services.metrics.login("refused");
    log.warn("Login of {name} from {ip} refused: {why}", { name, ip: s.remoteHost, why: refusal });
    throw new FtpError(NOT_LOGGED_IN, refusal);
  }
  const busy = loginLimitReached(s, found);
  if (busy !== null) {
    log.info("Login of {name} from {ip} refused: {why}", { name, ip: s.remoteHost, why: busy });
    await s.reply(NOT_AVAILABLE_CLOSING, `${busy}; closing`);
    s.quitting = true;
    return;
  }
  s.user = found;
  s.services.metrics.login("ok");
  // Paths the user may not list are absent from everything the session reads.
  s.services = {
    ...s.services,
    filelist: visibleFilelist(s.services.filelist, s.services.paths, found),
  };
  await s.services.users.touchLogin(name);
  log.info("Login: {name} from {ip}", { name, ip: s.remoteHost });
  await s.reply(LOGGED_IN, `User ${name} logged in`);
}

/** Why `user` may not open one more session now (max logins, per address), or null. */
function loginLimitReached(s: Session, user: User): string | null {
  const { maxLogins, maxLoginsPerAddress } = user;
  const sessions = s.services.sessions;
  if (maxLogins > 0 && sessions.ofUser(user.name).length >= maxLogins) {
    return `Too many logins for ${user.name} (max ${maxLogins})`;
  }
  if (
    maxLoginsPerAddress > 0 &&
    sessions.ofUser(user.name, s.remoteHost).length >= maxLoginsPerAddress
  ) {
    return `Too many logins for ${user.name} from your address (max ${maxLoginsPerAddress})`;
  }
  return null;
}

/** QUIT */
export async function quit(s: Session): Promise<void> {
  s.quitting = true;
  await s.reply(CLOSING_CONTROL, "Goodbye");
}

/** NOOP */
export async function noop(s: Session): Promise<void> {
  await s.reply(OK, "NOOP ok");
}

/** SYST */
export async function syst(s: Session): Promise<void> {
  await s.reply(SYSTEM_TYPE, "UNIX Type: L8");
}

/** OPTS UTF8 ON (names are always UTF-8). */
export async function opts(s: Session, arg: string): Promise<void> {
  const words = arg.trim().toUpperCase().split(/\s+/);
  if (words[0] === "UTF8" && (words[1] ?? "ON") === "ON") {
    await s.reply(OK, "UTF8 mode is always on");
    return;
  }
  if (words[0] === "UTF8" && words[1] === "OFF") {
    throw new FtpError(NOT_IMPLEMENTED_FOR_PARAM, "UTF8 cannot be turned off");
  }
  throw new FtpError(SYNTAX_ERROR_ARGS, `Unknown option "${arg.slice(0, 32)}"`);
}

/** TYPE */
export async function type(s: Session, arg: string): Promise<void> {
  s.type = parseTypeArg(arg);
  await s.reply(OK, `Type set to ${s.type}`);
}

/** MODE */
export async function mode(s: Session, arg: string): Promise<void> {
  if (arg.trim().toUpperCase() !== "S") {
    throw new FtpError(NOT_IMPLEMENTED_FOR_PARAM, "Only MODE S (stream) is supported");
  }
  await s.reply(OK, "Mode set to S");
}

/** STRU */
export async function stru(s: Session, arg: string): Promise<void> {
  if (arg.trim().toUpperCase() !== "F") {
    throw new FtpError(NOT_IMPLEMENTED_FOR_PARAM, "Only STRU F (file) is supported");
  }
  await s.reply(OK, "Structure set to F");
}

/** ALLO: nothing to reserve ahead. */
export async function allo(s: Session): Promise<void> {
  await s.reply(SUPERFLUOUS, "ALLO not needed");
}

/** PWD */
export async function pwd(s: Session): Promise<void> {
  await s.reply(PATH_CREATED, `${quotePath(s.cwd)} is the current directory`);
}

/** CWD */
export async function cwd(s: Session, _arg: string, path: string | null): Promise<void> {
  await changeDir(s, path!);
}

/** CDUP */
export async function cdup(s: Session): Promise<void> {
  await changeDir(s, parentOf(s.cwd));
}

async function changeDir(s: Session, path: string): Promise<void> {
  const e = await s.services.filelist.get(path);
  if (!e) throw new FtpError(FILE_UNAVAILABLE, `No such directory: ${path}`);
  if (e.kind !== "dir") throw new FtpError(FILE_UNAVAILABLE, `Not a directory: ${path}`);
  s.cwd = path;
  await s.reply(FILE_ACTION_OK, `Directory changed to ${path}`);
}

/**
 * STAT: without argument the session's status; with one, a listing of the target path (checked
 * by the dispatcher) on the control connection.
 */
export async function stat(s: Session, _arg: string, path: string | null): Promise<void> {
  if (path === null) {
    const lines = [
      // Security: the version only to logged-in users (it tells an attacker which flaws to try).
      s.user ? `drftpd ${VERSION} status:` : "Server status:",
      `Connected from ${s.remoteHost}`,
      s.user ? `Logged in as ${s.user.name}` : "Not logged in",
      `TYPE: ${s.type === "A" ? "ASCII" : "BINARY"}, STRU: File, MODE: Stream`,
      s.transfer ? "A transfer is in progress" : "No data connection",
      "End of status",
    ];
    await s.reply(SYSTEM_STATUS, lines);
    return;
  }
  const fl = s.services.filelist;
  const e = await fl.get(path);
  if (!e) throw new FtpError(FILE_UNAVAILABLE, `No such file or directory: ${path}`);
  const now = Date.now();
  const entries = listedEntries(e.kind === "dir" ? await fl.list(path) : [e]);
  await s.reply(FILE_STATUS, [
    `Status of ${path}:`,
    ...entries.map((x) => formatListLine(x, now)),
    "End of status",
  ]);
}

/** SITE REMERGE <slave>: a full remerge of an online slave, which keeps serving meanwhile. */
export async function siteRemerge(s: Session, arg: string): Promise<void> {
  const [name, ...extra] = arg.trim().split(/\s+/);
  if (name === undefined || name === "" || extra.length > 0) {
    throw new FtpError(SYNTAX_ERROR_ARGS, "Usage: SITE REMERGE <slave>");
  }
  const slave = s.services.slaves.get(name);
  if (!slave || slave.state !== "online") {
    throw new FtpError(FILE_UNAVAILABLE_BUSY, `Slave ${name.slice(0, 64)} is not online`);
  }
  if (slave.remerging) {
    throw new FtpError(FILE_UNAVAILABLE_BUSY, `A remerge of ${name} is already running`);
  }
  await slave.startFullRemerge();
  log.info("{who} started a full remerge of {slave}", { who: s.who, slave: name });
  await s.reply(OK, `Full remerge of ${name} started; SITE SLAVES shows when it is done`);
}

/** SITE COPY <path> <slave>: a one-off copy of a file to another slave (slave to slave). */
export async function siteCopy(s: Session, arg: string): Promise<void> {
  const m = /^(.*\S)\s+(\S+)$/.exec(arg.trim());
  if (!m) throw new FtpError(SYNTAX_ERROR_ARGS, "Usage: SITE COPY <path> <slave>");
  const path = normalize(s.cwd, m[1]!);
  const { filelist, slaves, config } = s.services;
  const done = await copyToSlave(
    { filelist, registry: slaves, tls: config.slaves.tls },
    path,
    m[2]!,
  );
  log.info("{who} copied {path} to {slave}", { who: s.who, path, slave: done.to });
  await s.reply(
    OK,
    `Copied ${path} from ${done.from} to ${done.to}: ${done.bytes} bytes in ${done.ms} ms`,
  );
}

/** SITE SLAVES: every known slave and its state. */
export async function siteSlaves(s: Session): Promise<void> {
  const list = await s.services.slaves.status();
  const lines = list.map((x) =>
    `${x.name} ${x.state}${x.state === "online" && x.remerging ? "+remerging" : ""}${
      x.unresponsive ? "+not-responding" : ""
    } address=${x.address} free=${x.free} total=${x.total} transfers=${x.activeTransfers}`
  );
  await s.reply(OK, ["Slaves:", ...lines, `${list.length} slaves known`]);
}
