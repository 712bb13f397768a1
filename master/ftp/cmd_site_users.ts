/**
 * SITE administration of users, groups and sessions (rows of the command table): USERS, USER,
 * ADDUSER, DELUSER, READD, CHPASS, PASSWD, ADDIP, DELIP, CHGRP, GROUPS, GROUP, CHANGE, GIVE,
 * TAKE, WHO, KICK, BANS, UNBAN. The table's action lets admins (and, for the `site_gadmin`
 * rows, group admins) in; who may touch which user is decided here, per target: an admin any
 * user, a group admin the non-admin members of their group. Replies are `200-` lines of
 * `key=value` or `key: value` text, one record per line.
 */
import { getLogger } from "@logtape/logtape";
import { applyField, formatUserLines, formatUserSummary, parseBytes } from "../auth/user_fields.ts";
import { NotFoundError, type User, UserExistsError } from "../auth/users.ts";
import { FtpError } from "./errors.ts";
import type { Session } from "./session.ts";
import { FILE_UNAVAILABLE, NOT_AVAILABLE_CLOSING, OK, SYNTAX_ERROR_ARGS } from "./replies.ts";

const log = getLogger(["drftpd", "master", "ftp"]);

/** The words of a SITE argument; at least `min` of them, or 501 with `usage`. */
function words(arg: string, min: number, usage: string): string[] {
  const w = arg.trim() === "" ? [] : arg.trim().split(/\s+/);
  if (w.length < min) throw new FtpError(SYNTAX_ERROR_ARGS, `Usage: ${usage}`);
  return w;
}

/** The user `name`, or 550 naming it. */
async function mustUser(s: Session, name: string): Promise<User> {
  const u = await s.services.users.get(name);
  if (!u) throw new FtpError(FILE_UNAVAILABLE, `No such user: ${name.slice(0, 64)}`);
  return u;
}

/** Whether `actor` may manage `target`: an admin anyone, a group admin their group's members. */
export function mayManage(actor: User, target: User): boolean {
  if (actor.admin) return true;
  return actor.groupAdmin !== null && !target.admin && target.groups.includes(actor.groupAdmin);
}

/** The user `name` if the caller may manage them, else 550. */
async function managed(s: Session, name: string): Promise<User> {
  const target = await mustUser(s, name);
  if (!mayManage(s.user!, target)) {
    throw new FtpError(FILE_UNAVAILABLE, `You may not manage user ${target.name}`);
  }
  return target;
}

/** Turns bad input from the user store into 501 and missing users into 550. */
async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof FtpError) throw e;
    if (e instanceof TypeError) throw new FtpError(SYNTAX_ERROR_ARGS, e.message);
    if (e instanceof NotFoundError || e instanceof UserExistsError) {
      throw new FtpError(FILE_UNAVAILABLE, e.message);
    }
    throw e;
  }
}

async function done(s: Session, what: string, lines: string[] = []): Promise<void> {
  log.info("{who}: {what}", { who: s.who, what });
  await s.reply(OK, lines.length > 0 ? [...lines, what] : what);
}

/** SITE USERS: every user (a group admin: their group's members). */
export async function users(s: Session): Promise<void> {
  const me = s.user!;
  const all = await s.services.users.list();
  const shown = all.filter((u) => mayManage(me, u));
  await s.reply(OK, ["Users:", ...shown.map(formatUserSummary), `${shown.length} users`]);
}

/** SITE USER <name>: one user's fields (anyone may see themselves). */
export async function user(s: Session, arg: string): Promise<void> {
  const [name] = words(arg, 1, "SITE USER <name>");
  const target = name === s.user!.name ? await mustUser(s, name!) : await managed(s, name!);
  await s.reply(OK, [`User ${target.name}:`, ...formatUserLines(target), "End"]);
}

/** SITE ADDUSER <name> <password> [masks…]: a group admin adds to their group, within slots. */
export async function addUser(s: Session, arg: string): Promise<void> {
  const [name, password, ...masks] = words(arg, 2, "SITE ADDUSER <name> <password> [masks...]");
  const me = s.user!;
  let groups: string[] | undefined;
  if (!me.admin) {
    const group = me.groupAdmin!;
    const members = await s.services.users.members(group);
    if (members.length >= me.groupSlots) {
      throw new FtpError(
        FILE_UNAVAILABLE,
        `No free slots in group ${group} (${me.groupSlots} used)`,
      );
    }
    groups = [group];
  }
  await guard(() =>
    s.services.users.add(name!, password!, { masks, ...(groups ? { groups } : {}) })
  );
  await done(s, `Added user ${name}`);
}

/** SITE DELUSER <name>: the user can no longer log in; SITE READD brings it back. */
export async function delUser(s: Session, arg: string): Promise<void> {
  const [name] = words(arg, 1, "SITE DELUSER <name>");
  await managed(s, name!);
  await s.services.users.retire(name!);
  await done(s, `Deleted user ${name} (SITE READD ${name} restores it)`);
}

/** SITE READD <name>: restores a user SITE DELUSER deleted (admins). */
export async function readd(s: Session, arg: string): Promise<void> {
  const [name] = words(arg, 1, "SITE READD <name>");
  await guard(() => s.services.users.restore(name!));
  await done(s, `Restored user ${name}`);
}

/** SITE CHPASS <name> <password> */
export async function chpass(s: Session, arg: string): Promise<void> {
  const [name, password] = words(arg, 2, "SITE CHPASS <name> <password>");
  await managed(s, name!);
  await guard(() => s.services.users.setPassword(name!, password!));
  await done(s, `Password of ${name} changed`);
}

/** SITE PASSWD <new password>: one's own password (the rest of the line, spaces included). */
export async function passwd(s: Session, arg: string): Promise<void> {
  if (arg.trim() === "") throw new FtpError(SYNTAX_ERROR_ARGS, "Usage: SITE PASSWD <new password>");
  await guard(() => s.services.users.setPassword(s.user!.name, arg.trim()));
  await done(s, "Password changed");
}

/** SITE ADDIP <name> <mask…> */
export async function addIp(s: Session, arg: string): Promise<void> {
  const [name, ...masks] = words(arg, 2, "SITE ADDIP <name> <mask...>");
  await managed(s, name!);
  const u = await guard(() => s.services.users.change(name!, (x) => x.masks.push(...masks)));
  await done(s, `Masks of ${name}: ${u.masks.join(" ")}`);
}

/** SITE DELIP <name> <mask…> */
export async function delIp(s: Session, arg: string): Promise<void> {
  const [name, ...masks] = words(arg, 2, "SITE DELIP <name> <mask...>");
  await managed(s, name!);
  const u = await guard(() =>
    s.services.users.change(name!, (x) => {
      const missing = masks.filter((m) => !x.masks.includes(m));
      if (missing.length > 0) throw new TypeError(`${name} has no mask ${missing.join(" ")}`);
      x.masks = x.masks.filter((m) => !masks.includes(m));
    })
  );
  await done(s, `Masks of ${name}: ${u.masks.join(" ") || "(any address)"}`);
}

/** SITE CHGRP <name> <group…>: toggles each group (added if absent, removed if present). */
export async function chgrp(s: Session, arg: string): Promise<void> {
  const [name, ...groups] = words(arg, 2, "SITE CHGRP <name> <group...>");
  const u = await guard(() =>
    s.services.users.change(name!, (x) => {
      for (const g of groups) {
        x.groups = x.groups.includes(g) ? x.groups.filter((y) => y !== g) : [...x.groups, g];
      }
    })
  );
  await done(s, `Groups of ${name}: ${u.groups.join(",")}`);
}

/** SITE GROUPS: every group with its member count. */
export async function groups(s: Session): Promise<void> {
  const all = await s.services.users.list();
  const lines = (await s.services.users.listGroups()).map((g) =>
    `${g.name} members=${all.filter((u) => u.groups.includes(g.name)).length}`
  );
  await s.reply(OK, ["Groups:", ...lines, `${lines.length} groups`]);
}

/** SITE GROUP <group>: its members (admins, and its group admins). */
export async function group(s: Session, arg: string): Promise<void> {
  const [name] = words(arg, 1, "SITE GROUP <group>");
  const me = s.user!;
  if (!me.admin && me.groupAdmin !== name) {
    throw new FtpError(FILE_UNAVAILABLE, `You may not manage group ${name!.slice(0, 64)}`);
  }
  const g = await s.services.users.getGroup(name!);
  if (!g) throw new FtpError(FILE_UNAVAILABLE, `No such group: ${name!.slice(0, 64)}`);
  const members = await s.services.users.members(name!);
  await s.reply(OK, [
    `Group ${g.name}:`,
    ...members.map(formatUserSummary),
    `${members.length} members`,
  ]);
}

/** SITE CHANGE <name> <field> <value> */
export async function change(s: Session, arg: string): Promise<void> {
  const [name, field, ...rest] = words(arg, 3, "SITE CHANGE <name> <field> <value>");
  const u = await guard(() =>
    s.services.users.change(name!, (x) => applyField(x, field!, rest.join(" ")))
  );
  await done(s, `Changed ${field} of ${name}`, formatUserLines(u));
}

/** SITE GIVE <name> <bytes>: adds download credits. */
export async function give(s: Session, arg: string): Promise<void> {
  await credits(s, arg, "GIVE", 1);
}

/** SITE TAKE <name> <bytes>: removes download credits (not below zero). */
export async function take(s: Session, arg: string): Promise<void> {
  await credits(s, arg, "TAKE", -1);
}

async function credits(s: Session, arg: string, verb: string, sign: 1 | -1): Promise<void> {
  const [name, amount] = words(arg, 2, `SITE ${verb} <name> <bytes>`);
  const bytes = await guard(() => Promise.resolve(parseBytes(amount!)));
  const u = await guard(() =>
    s.services.users.change(name!, (x) => {
      x.credits = Math.max(0, x.credits + sign * bytes);
    })
  );
  await done(s, `Credits of ${name}: ${u.credits}`);
}

/** SITE KICK <name>: ends every session of that user. */
export async function kick(s: Session, arg: string): Promise<void> {
  const [name] = words(arg, 1, "SITE KICK <name>");
  const victims = s.services.sessions.ofUser(name!).filter((x) => x !== s);
  for (const v of victims) {
    v.transfer?.abort();
    v.reply(NOT_AVAILABLE_CLOSING, `Kicked by ${s.user!.name}`).finally(() => v.close());
  }
  await done(s, `Kicked ${victims.length} session(s) of ${name}`);
}

/** SITE BANS: addresses banned for failed logins. */
export async function bans(s: Session): Promise<void> {
  const list = s.services.loginGuard.bans();
  await s.reply(OK, [
    "Bans:",
    ...list.map((b) => `${b.address} seconds_left=${Math.ceil(b.msLeft / 1000)}`),
    `${list.length} banned`,
  ]);
}

/** SITE UNBAN <address> */
export async function unban(s: Session, arg: string): Promise<void> {
  const [address] = words(arg, 1, "SITE UNBAN <address>");
  if (!s.services.loginGuard.unban(address!)) {
    throw new FtpError(FILE_UNAVAILABLE, `${address!.slice(0, 64)} is not banned`);
  }
  await done(s, `Unbanned ${address}`);
}

/** SITE UNLOCK <user>: lifts the lock failed logins put on an account. */
export async function unlock(s: Session, arg: string): Promise<void> {
  const [name] = words(arg, 1, "SITE UNLOCK <user>");
  if (!(await s.services.accountGuard.unlock(name!))) {
    throw new FtpError(FILE_UNAVAILABLE, `${name!.slice(0, 64)} is not locked`);
  }
  await done(s, `Unlocked ${name}`);
}

/**
 * SITE WHO: every session with its user, address, idle seconds, last command and cwd; a running
 * file transfer adds its direction, path, bytes so far and current speed in bytes/s (from the
 * slaves' progress reports, `SlaveRegistry.activeTransfers`; relayed transfers too, since the
 * slave reports its leg), else the average since it started.
 */
export async function who(s: Session): Promise<void> {
  const now = Date.now();
  const live = new Map(s.services.slaves.activeTransfers().map((t) => [t.xfer, t]));
  const running = s.services.metrics.active();
  const lines = s.services.sessions.all().map((x) => {
    const base = `id=${x.id} user=${x.user?.name ?? "-"} address=${x.remoteHost} idle=${
      Math.floor((now - x.lastCommand.at) / 1000)
    } command=${x.lastCommand.verb || "-"} cwd=${JSON.stringify(x.cwd)}`;
    const r = x.running;
    if (!r || !x.runningKind) return base;
    const t = running.find((a) =>
      a.user === x.user?.name && a.remoteHost === x.remoteHost && a.path === r.path &&
      a.direction === x.runningKind
    );
    const l = live.get(r.xfer);
    const bytes = Math.max(l?.bytes ?? 0, t?.bytes ?? 0);
    const secs = Math.max(0.001, (now - (t?.started ?? r.started)) / 1000);
    const speed = l ? l.speed : Math.round(bytes / secs);
    return `${base} transfer=${x.runningKind} path=${
      JSON.stringify(r.path)
    } bytes=${bytes} speed=${speed}`;
  });
  await s.reply(OK, ["Sessions:", ...lines, `${lines.length} sessions`]);
}
