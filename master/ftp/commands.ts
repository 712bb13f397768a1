/**
 * The declarative FTP command table. Each verb states whether it needs a login, its argument
 * rule, whether its argument is a path, the permission action, whether it opens a data
 * connection, whether it may run during a transfer, its FEAT line and its help text.
 * HELP and FEAT are generated from this table.
 */
import type { Action } from "../auth/permissions.ts";
import * as basic from "./cmd_basic.ts";
import * as data from "./cmd_data.ts";
import * as files from "./cmd_files.ts";
import * as tls from "./cmd_tls.ts";
import type { Session } from "./session.ts";
import * as xfer from "./transfers.ts";

/** Lets a data command register what ABOR should do. */
export interface TransferControl {
  onAbort(fn: () => void): void;
}

/** One entry of the command table. */
export interface Command {
  help: string;
  /** A login is needed first. */
  login: boolean;
  arg: "none" | "required" | "optional";
  /**
   * The argument is a path (true), or its path is what follows the first word ("after-word",
   * e.g. `MFMT <time> <path>`): the dispatcher normalises it and passes it as `path`.
   */
  path?: true | "after-word";
  /** Permission the user needs on the path (or cwd). */
  action?: Action;
  /** Runs in the background as a transfer (ABOR may interrupt it). */
  opensData?: boolean;
  /** May run while a transfer is in progress. */
  duringTransfer?: boolean;
  /** Line this command adds to FEAT (without the leading space). */
  feat?: string;
  run(s: Session, arg: string, path: string | null, ctrl: TransferControl): Promise<void>;
}

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
  FEAT: { help: "FEAT: list extensions", login: false, arg: "none", run: basic.feat },
  OPTS: {
    help: "OPTS UTF8 ON: enable UTF-8 (always on)",
    login: false,
    arg: "required",
    feat: "UTF8",
    run: basic.opts,
  },
  HELP: { help: "HELP [verb]: this help", login: false, arg: "optional", run: basic.help },
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
    path: true,
    action: "list",
    run: basic.cwd,
  },
  CDUP: { help: "CDUP: parent directory", login: true, arg: "none", run: basic.cdup },
  STAT: {
    help: "STAT [path]: session status, or a listing over the control connection",
    login: false,
    arg: "optional",
    duringTransfer: true,
    run: basic.stat,
  },
  SITE: {
    help: "SITE SLAVES, SITE REMERGE <slave>: slave status, full remerge (admins)",
    login: true,
    arg: "required",
    run: basic.site,
  },
  MKD: {
    help: "MKD <dir>: make a directory",
    login: true,
    arg: "required",
    path: true,
    action: "mkdir",
    run: files.mkd,
  },
  RMD: {
    help: "RMD <dir>: remove an empty directory",
    login: true,
    arg: "required",
    path: true,
    action: "delete",
    run: files.rmd,
  },
  DELE: {
    help: "DELE <file>: delete a file",
    login: true,
    arg: "required",
    path: true,
    action: "delete",
    run: files.dele,
  },
  RNFR: {
    help: "RNFR <path>: rename from",
    login: true,
    arg: "required",
    path: true,
    action: "rename",
    run: files.rnfr,
  },
  RNTO: {
    help: "RNTO <path>: rename to",
    login: true,
    arg: "required",
    path: true,
    action: "rename",
    run: files.rnto,
  },
  SIZE: {
    help: "SIZE <file>: file size",
    login: true,
    arg: "required",
    path: true,
    action: "read",
    feat: "SIZE",
    run: files.size,
  },
  MDTM: {
    help: "MDTM <file>: modification time",
    login: true,
    arg: "required",
    path: true,
    action: "read",
    feat: "MDTM",
    run: files.mdtm,
  },
  MFMT: {
    help: "MFMT <YYYYMMDDHHMMSS> <path>: set the modification time (UTC)",
    login: true,
    arg: "required",
    path: "after-word",
    action: "write",
    feat: "MFMT",
    run: files.mfmt,
  },
  MLST: {
    help: "MLST [path]: facts about one entry",
    login: true,
    arg: "optional",
    path: true,
    action: "list",
    feat: "MLST type*;size*;modify*;perm*;UNIX.owner*;UNIX.group*;",
    run: files.mlst,
  },
  XCRC: {
    help: "XCRC <file>: CRC32 of a file",
    login: true,
    arg: "required",
    path: true,
    action: "read",
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
    run: data.pret,
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
    path: true,
    action: "read",
    opensData: true,
    run: xfer.retr,
  },
  STOR: {
    help: "STOR <file>: upload",
    login: true,
    arg: "required",
    path: true,
    action: "write",
    opensData: true,
    run: xfer.stor,
  },
  APPE: {
    help: "APPE <file>: append (resume an upload)",
    login: true,
    arg: "required",
    path: true,
    action: "write",
    opensData: true,
    run: xfer.appe,
  },
  LIST: {
    help: "LIST [path]: long listing",
    login: true,
    arg: "optional",
    action: "list",
    opensData: true,
    run: xfer.list,
  },
  NLST: {
    help: "NLST [path]: name listing",
    login: true,
    arg: "optional",
    action: "list",
    opensData: true,
    run: xfer.nlst,
  },
  MLSD: {
    help: "MLSD [dir]: machine listing",
    login: true,
    arg: "optional",
    path: true,
    action: "list",
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

/** The command for `verb` (upper case), following aliases. */
export function lookup(verb: string): Command | undefined {
  return TABLE[ALIASES[verb] ?? verb];
}

/** Every verb the server knows, sorted. */
export function verbs(): string[] {
  return [...Object.keys(TABLE), ...Object.keys(ALIASES)].sort();
}

/** FEAT lines generated from the table, sorted. */
export function featLines(): string[] {
  return Object.values(TABLE).flatMap((c) => (c.feat ? [c.feat] : [])).sort();
}
