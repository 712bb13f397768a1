/**
 * The declarative FTP command table, the only source of what a verb does: whether it needs a
 * login, its argument rule, how its argument names a path, the permission action, whether it
 * opens a data connection, what PRET announces for it, whether it may run during a transfer,
 * its FEAT line and its help text. SITE subcommands are rows too ("SITE REMERGE"). HELP, FEAT,
 * SITE HELP and the PRET kinds are generated from this table.
 */
import { FtpError } from "./errors.ts";
import * as basic from "./cmd_basic.ts";
import * as data from "./cmd_data.ts";
import * as files from "./cmd_files.ts";
import * as selection from "./cmd_selection.ts";
import * as site from "./cmd_site_users.ts";
import * as slaves from "./cmd_site_slaves.ts";
import * as tls from "./cmd_tls.ts";
import { type Command, pathText } from "./command_spec.ts";
import type { Session } from "./session.ts";
import * as xfer from "./transfers.ts";
import {
  HELP,
  NOT_IMPLEMENTED,
  NOT_IMPLEMENTED_FOR_PARAM,
  SYNTAX_ERROR,
  SYNTAX_ERROR_ARGS,
  SYSTEM_STATUS,
} from "./replies.ts";

export type { Command, TransferControl } from "./command_spec.ts";

const TABLE: Readonly<Record<string, Command>> = {
  AUTH: {
    help: "AUTH TLS: protect the control connection",
    login: false,
    arg: "required",
    feat: "AUTH TLS",
    run: tls.auth,
  },
  PBSZ: {
    help: "PBSZ 0: protection buffer size",
    login: false,
    arg: "required",
    feat: "PBSZ",
    run: tls.pbsz,
  },
  PROT: {
    help: "PROT C|P: protect data connections",
    login: false,
    arg: "required",
    feat: "PROT",
    run: tls.prot,
  },
  CCC: { help: "CCC: refused", login: true, arg: "none", run: tls.ccc },
  SSCN: {
    help: "SSCN [ON|OFF]: TLS client (ON) or server role on data connections",
    login: true,
    arg: "optional",
    feat: "SSCN",
    run: tls.sscn,
  },
  CPSV: {
    help: "CPSV: PASV where we are the TLS client (secure FXP)",
    login: true,
    arg: "none",
    feat: "CPSV",
    run: tls.cpsv,
  },
  USER: { help: "USER <name>: start a login", login: false, arg: "required", run: basic.user },
  PASS: { help: "PASS <password>: finish a login", login: false, arg: "optional", run: basic.pass },
  QUIT: {
    help: "QUIT: end the session",
    login: false,
    arg: "none",
    duringTransfer: false,
    run: basic.quit,
  },
  NOOP: { help: "NOOP: do nothing", login: false, arg: "optional", run: basic.noop },
  SYST: { help: "SYST: system type", login: false, arg: "none", run: basic.syst },
  FEAT: { help: "FEAT: list extensions", login: false, arg: "none", run: feat },
  OPTS: {
    help: "OPTS UTF8 ON: enable UTF-8 (always on)",
    login: false,
    arg: "required",
    feat: "UTF8",
    run: basic.opts,
  },
  HELP: { help: "HELP [verb]: this help", login: false, arg: "optional", run: help },
  TYPE: { help: "TYPE A|I: transfer type", login: true, arg: "required", run: basic.type },
  MODE: { help: "MODE S: stream mode only", login: true, arg: "required", run: basic.mode },
  STRU: { help: "STRU F: file structure only", login: true, arg: "required", run: basic.stru },
  ALLO: {
    help: "ALLO <n>: accepted, nothing to do",
    login: true,
    arg: "optional",
    run: basic.allo,
  },
  PWD: { help: "PWD: print working directory", login: true, arg: "none", run: basic.pwd },
  CWD: {
    help: "CWD <dir>: change directory",
    login: true,
    arg: "required",
    path: "path",
    action: "list",
    hint: true,
    run: basic.cwd,
  },
  CDUP: { help: "CDUP: parent directory", login: true, arg: "none", hint: true, run: basic.cdup },
  STAT: {
    help: "STAT [path]: session status, or a listing over the control connection",
    login: "with-argument",
    arg: "optional",
    path: "listing",
    action: "list",
    duringTransfer: true,
    run: basic.stat,
  },
  "SITE HELP": {
    help: "SITE HELP: the SITE commands",
    login: true,
    arg: "none",
    action: "site_user",
    run: siteHelp,
  },
  "SITE PASSWD": {
    help: "SITE PASSWD <new password>: change your own password",
    login: true,
    arg: "required",
    action: "site_user",
    run: site.passwd,
  },
  "SITE USER": {
    help: "SITE USER <name>: a user's fields (yourself; admins and group admins: their users)",
    login: true,
    arg: "required",
    action: "site_user",
    run: site.user,
  },
  "SITE USERS": {
    help: "SITE USERS: every user you manage (admins, group admins)",
    login: true,
    arg: "none",
    action: "site_gadmin",
    run: site.users,
  },
  "SITE ADDUSER": {
    help: "SITE ADDUSER <name> <password> [masks...]: add a user (admins, group admins)",
    login: true,
    arg: "required",
    action: "site_gadmin",
    run: site.addUser,
  },
  "SITE DELUSER": {
    help: "SITE DELUSER <name>: delete a user, kept for READD (admins, group admins)",
    login: true,
    arg: "required",
    action: "site_gadmin",
    run: site.delUser,
  },
  "SITE READD": {
    help: "SITE READD <name>: restore a deleted user (admins)",
    login: true,
    arg: "required",
    action: "site_admin",
    run: site.readd,
  },
  "SITE CHPASS": {
    help: "SITE CHPASS <name> <password>: set a user's password (admins, group admins)",
    login: true,
    arg: "required",
    action: "site_gadmin",
    run: site.chpass,
  },
  "SITE ADDIP": {
    help: "SITE ADDIP <name> <mask...>: add address masks (admins, group admins)",
    login: true,
    arg: "required",
    action: "site_gadmin",
    run: site.addIp,
  },
  "SITE DELIP": {
    help: "SITE DELIP <name> <mask...>: remove address masks (admins, group admins)",
    login: true,
    arg: "required",
    action: "site_gadmin",
    run: site.delIp,
  },
  "SITE CHGRP": {
    help: "SITE CHGRP <name> <group...>: toggle group memberships (admins)",
    login: true,
    arg: "required",
    action: "site_admin",
    run: site.chgrp,
  },
  "SITE GROUPS": {
    help: "SITE GROUPS: every group with its member count (admins)",
    login: true,
    arg: "none",
    action: "site_admin",
    run: site.groups,
  },
  "SITE GROUP": {
    help: "SITE GROUP <group>: a group's members (admins, its group admins)",
    login: true,
    arg: "required",
    action: "site_gadmin",
    run: site.group,
  },
  "SITE CHANGE": {
    help: "SITE CHANGE <name> <field> <value>: set a user field (admins)",
    login: true,
    arg: "required",
    action: "site_admin",
    run: site.change,
  },
  "SITE GIVE": {
    help: "SITE GIVE <name> <bytes>: add download credits (admins)",
    login: true,
    arg: "required",
    action: "site_admin",
    run: site.give,
  },
  "SITE TAKE": {
    help: "SITE TAKE <name> <bytes>: remove download credits (admins)",
    login: true,
    arg: "required",
    action: "site_admin",
    run: site.take,
  },
  "SITE WHO": {
    help: "SITE WHO: every session and its running transfer (admins)",
    login: true,
    arg: "none",
    action: "site_admin",
    duringTransfer: true,
    run: site.who,
  },
  "SITE KICK": {
    help: "SITE KICK <name>: end every session of a user (admins)",
    login: true,
    arg: "required",
    action: "site_admin",
    run: site.kick,
  },
  "SITE BANS": {
    help: "SITE BANS: addresses banned for failed logins (admins)",
    login: true,
    arg: "none",
    action: "site_admin",
    run: site.bans,
  },
  "SITE UNBAN": {
    help: "SITE UNBAN <address>: lift a ban (admins)",
    login: true,
    arg: "required",
    action: "site_admin",
    run: site.unban,
  },
  "SITE UNLOCK": {
    help: "SITE UNLOCK <user>: lift the lock failed logins put on an account (admins)",
    login: true,
    arg: "required",
    action: "site_admin",
    run: site.unlock,
  },
  "SITE SLAVES": {
    help: "SITE SLAVES: status of every slave (admins)",
    login: true,
    arg: "none",
    action: "site_admin",
    run: basic.siteSlaves,
  },
  "SITE COPY": {
    help: "SITE COPY <path> <slave>: copy a file to another slave, slave to slave (admins)",
    login: true,
    arg: "required",
    action: "site_admin",
    run: basic.siteCopy,
  },
  "SITE SLAVESELECT": {
    help: "SITE SLAVESELECT up|down <path>: each slave's score for a transfer, or why not (admins)",
    login: true,
    arg: "required",
    path: "after-word",
    action: "site_admin",
    run: selection.siteSlaveSelect,
  },
  "SITE SLAVE": {
    help: "SITE SLAVE <name>: one slave: space, transfers, speed, files and bytes held (admins)",
    login: true,
    arg: "required",
    action: "site_admin",
    duringTransfer: true,
    run: slaves.slave,
  },
  "SITE KICKSLAVE": {
    help: "SITE KICKSLAVE <name>: drop a slave's link; it reconnects and remerges (admins)",
    login: true,
    arg: "required",
    action: "site_admin",
    run: slaves.kickSlave,
  },
  "SITE REPLICATION": {
    help: "SITE REPLICATION: queued and running copies, the last failures (admins)",
    login: true,
    arg: "none",
    action: "site_admin",
    duringTransfer: true,
    run: slaves.replication,
  },
  "SITE RELOAD": {
    help: "SITE RELOAD: re-read master.toml's [[replication]] and copy settings (admins)",
    login: true,
    arg: "none",
    action: "site_admin",
    run: slaves.reload,
  },
  "SITE REMERGE": {
    help: "SITE REMERGE <slave>: full remerge of an online slave (admins)",
    login: true,
    arg: "required",
    action: "site_admin",
    run: basic.siteRemerge,
  },
  MKD: {
    help: "MKD <dir>: make a directory",
    login: true,
    arg: "required",
    path: "path",
    action: "makedir",
    creates: true,
    run: files.mkd,
  },
  RMD: {
    help: "RMD <dir>: remove an empty directory",
    login: true,
    arg: "required",
    path: "path",
    action: "delete",
    run: files.rmd,
  },
  DELE: {
    help: "DELE <file>: delete a file",
    login: true,
    arg: "required",
    path: "path",
    action: "delete",
    run: files.dele,
  },
  RNFR: {
    help: "RNFR <path>: rename from",
    login: true,
    arg: "required",
    path: "path",
    action: "rename",
    run: files.rnfr,
  },
  RNTO: {
    help: "RNTO <path>: rename to",
    login: true,
    arg: "required",
    path: "path",
    action: "rename",
    creates: true,
    run: files.rnto,
  },
  SIZE: {
    help: "SIZE <file>: file size",
    login: true,
    arg: "required",
    path: "path",
    action: "list",
    feat: "SIZE",
    hint: true,
    run: files.size,
  },
  MDTM: {
    help: "MDTM <file>: modification time",
    login: true,
    arg: "required",
    path: "path",
    action: "list",
    feat: "MDTM",
    hint: true,
    run: files.mdtm,
  },
  MFMT: {
    help: "MFMT <YYYYMMDDHHMMSS> <path>: set the modification time (UTC)",
    login: true,
    arg: "required",
    path: "after-word",
    action: "overwrite",
    feat: "MFMT",
    run: files.mfmt,
  },
  MLST: {
    help: "MLST [path]: facts about one entry",
    login: true,
    arg: "optional",
    path: "path",
    action: "list",
    feat: "MLST type*;size*;modify*;perm*;UNIX.owner*;UNIX.group*;",
    hint: true,
    run: files.mlst,
  },
  XCRC: {
    help: "XCRC <file>: CRC32 of a file",
    login: true,
    arg: "required",
    path: "path",
    action: "download",
    feat: "XCRC",
    run: files.xcrc,
  },
  REST: {
    help: "REST <offset>: restart position for the next RETR/STOR",
    login: true,
    arg: "required",
    feat: "REST STREAM",
    run: data.rest,
  },
  PRET: {
    help: "PRET <verb> [arg]: announce the next transfer (picks the slave)",
    login: true,
    arg: "required",
    feat: "PRET",
    run: pret,
  },
  PASV: { help: "PASV: passive data connection", login: true, arg: "none", run: data.pasv },
  EPSV: {
    help: "EPSV [ALL]: extended passive data connection",
    login: true,
    arg: "optional",
    feat: "EPSV",
    run: data.epsv,
  },
  PORT: {
    help: "PORT h1,h2,h3,h4,p1,p2: active data connection",
    login: true,
    arg: "required",
    run: data.port,
  },
  EPRT: {
    help: "EPRT |af|addr|port|: extended active data connection",
    login: true,
    arg: "required",
    feat: "EPRT",
    run: data.eprt,
  },
  ABOR: {
    help: "ABOR: abort the transfer",
    login: true,
    arg: "none",
    duringTransfer: true,
    run: data.abor,
  },
  RETR: {
    help: "RETR <file>: download",
    login: true,
    arg: "required",
    path: "path",
    action: "download",
    pret: "download",
    opensData: true,
    run: xfer.retr,
  },
  STOR: {
    help: "STOR <file>: upload",
    login: true,
    arg: "required",
    path: "path",
    action: "upload",
    pret: "upload",
    opensData: true,
    creates: true,
    run: xfer.stor,
  },
  APPE: {
    help: "APPE <file>: append (resume an upload)",
    login: true,
    arg: "required",
    path: "path",
    action: "upload",
    pret: "upload",
    opensData: true,
    creates: true,
    run: xfer.appe,
  },
  LIST: {
    help: "LIST [path]: long listing",
    login: true,
    arg: "optional",
    path: "listing",
    action: "list",
    pret: "list",
    opensData: true,
    run: xfer.list,
  },
  NLST: {
    help: "NLST [path]: name listing",
    login: true,
    arg: "optional",
    path: "listing",
    action: "list",
    pret: "list",
    opensData: true,
    run: xfer.nlst,
  },
  MLSD: {
    help: "MLSD [dir]: machine listing",
    login: true,
    arg: "optional",
    path: "path",
    action: "list",
    pret: "list",
    opensData: true,
    run: xfer.mlsd,
  },
};

const ALIASES: Readonly<Record<string, string>> = {
  XCWD: "CWD",
  XCUP: "CDUP",
  XPWD: "PWD",
  XMKD: "MKD",
  XRMD: "RMD",
};

/** A control line's verb resolved to its row: SITE subcommands are rows named "SITE <SUB>". */
export interface ResolvedCommand {
  /** The row's name ("RETR", "SITE REMERGE"); aliases resolve to their row's name. */
  name: string;
  cmd: Command;
  /** The argument the row sees (for SITE rows: what follows the subcommand). */
  arg: string;
}

/**
 * The row for `verb` (upper case) with argument `arg`, following aliases; SITE looks up its
 * subcommand. Throws FtpError 500 for an unknown verb or SITE subcommand, 501 for a bare SITE.
 */
export function resolveCommand(verb: string, arg: string): ResolvedCommand {
  if (verb === "SITE") {
    const { word, rest } = splitFirst(arg);
    if (word === "") {
      throw new FtpError(SYNTAX_ERROR_ARGS, "SITE needs a subcommand; SITE HELP lists them");
    }
    const name = `SITE ${word.toUpperCase()}`;
    const cmd = TABLE[name];
    if (!cmd) {
      throw new FtpError(
        SYNTAX_ERROR,
        `Unknown SITE command "${word.slice(0, 32)}"; SITE HELP lists them`,
      );
    }
    return { name, cmd, arg: rest };
  }
  const name = ALIASES[verb] ?? verb;
  const cmd = name.includes(" ") ? undefined : TABLE[name];
  if (!cmd) throw new FtpError(SYNTAX_ERROR, `Unknown command "${verb.slice(0, 32)}"`);
  return { name, cmd, arg };
}

/** Splits off the first space-separated word; `rest` is what follows its separating spaces. */
function splitFirst(arg: string): { word: string; rest: string } {
  const t = arg.replace(/^ +/, "");
  const sp = t.indexOf(" ");
  if (sp < 0) return { word: t, rest: "" };
  return { word: t.slice(0, sp), rest: t.slice(sp + 1).replace(/^ +/, "") };
}

/** Every verb the server knows (SITE once, not its rows), sorted. */
export function verbs(): string[] {
  const top = Object.keys(TABLE).filter((v) => !v.startsWith("SITE "));
  return [...top, "SITE", ...Object.keys(ALIASES)].sort();
}

/** The SITE rows' names ("SITE HELP", "SITE REMERGE"…), sorted. */
export function siteCommands(): string[] {
  return Object.keys(TABLE).filter((v) => v.startsWith("SITE ")).sort();
}

/** FEAT lines generated from the table, sorted. */
export function featLines(): string[] {
  return Object.values(TABLE).flatMap((c) => (c.feat ? [c.feat] : [])).sort();
}

/** The verbs PRET accepts (the rows that declare a PRET kind), sorted. */
export function pretVerbs(): string[] {
  return Object.keys(TABLE).filter((v) => TABLE[v]!.pret).sort();
}

/** FEAT, generated from the table. */
async function feat(s: Session): Promise<void> {
  await s.reply(SYSTEM_STATUS, ["Features:", ...featLines(), "End"]);
}

/** HELP [verb], generated from the table. */
async function help(s: Session, arg: string): Promise<void> {
  const words = arg.trim();
  if (words) {
    const sp = words.indexOf(" ");
    const verb = (sp < 0 ? words : words.slice(0, sp)).toUpperCase();
    let found: Command;
    try {
      found = resolveCommand(verb, sp < 0 ? "" : words.slice(sp + 1)).cmd;
    } catch {
      throw new FtpError(NOT_IMPLEMENTED, `Unknown command "${words.slice(0, 32)}"`);
    }
    await s.reply(HELP, verb === "SITE" && sp < 0 ? await siteHelpLines(s) : found.help);
    return;
  }
  const all = verbs();
  const rows: string[] = [];
  for (let i = 0; i < all.length; i += 8) rows.push(all.slice(i, i + 8).join(" "));
  await s.reply(HELP, ["The following commands are recognized:", ...rows, "Help OK"]);
}

/** SITE HELP (and HELP SITE): the SITE rows the caller may run, with their help. */
async function siteHelp(s: Session): Promise<void> {
  await s.reply(HELP, await siteHelpLines(s));
}

async function siteHelpLines(s: Session): Promise<string[]> {
  const mine: string[] = [];
  for (const v of siteCommands()) {
    const action = TABLE[v]!.action;
    if (action === undefined || await s.may(action, null)) mine.push(TABLE[v]!.help);
  }
  return ["SITE commands:", ...mine, "End"];
}

/**
 * PRET <verb> [arg]: the verb must be a row with a PRET kind; its argument is read with that
 * row's path mode (so `PRET LIST -la dir` names "dir").
 */
async function pret(s: Session, arg: string): Promise<void> {
  const { word, rest } = splitFirst(arg.trim());
  const verb = word.toUpperCase();
  const cmd = TABLE[ALIASES[verb] ?? verb];
  if (!cmd?.pret) {
    throw new FtpError(
      NOT_IMPLEMENTED_FOR_PARAM,
      `PRET does not support "${verb.slice(0, 16)}"; it takes ${pretVerbs().join(", ")}`,
    );
  }
  const text = cmd.path ? pathText(cmd.path, rest) ?? "" : rest;
  await data.pret(s, { verb, kind: cmd.pret, path: s.resolve(text.trim()), named: text !== "" });
}
