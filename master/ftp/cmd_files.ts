/**
 * Filelist commands: MKD RMD DELE RNFR RNTO SIZE MDTM MLST XCRC.
 * The filelist changes first; slaves are then told, best effort (a slave that is offline
 * gets the change when it remerges: see ARCHITECTURE.md).
 */
import { getLogger } from "@logtape/logtape";
import type { Entry, FileEntry } from "../filelist/types.ts";
import type { QueuedOp } from "../slaves/op_queue.ts";
import { SlaveReplyError } from "../slaves/slave_handle.ts";
import { formatMdtm, parseMfmtArg, splitWord } from "./codecs.ts";
import { FtpError } from "./errors.ts";
import { formatMlstLine } from "./listing.ts";
import {
  BAD_SEQUENCE,
  FILE_ACTION_OK,
  FILE_STATUS,
  FILE_UNAVAILABLE,
  FILE_UNAVAILABLE_BUSY,
  NAME_NOT_ALLOWED,
  PATH_CREATED,
  PENDING_MORE_INFO,
  quotePath,
  SYNTAX_ERROR_ARGS,
} from "./replies.ts";
import type { Session } from "./session.ts";

const log = getLogger(["drftpd", "master", "ftp"]);

async function must(s: Session, path: string): Promise<Entry> {
  const e = await s.services.filelist.get(path);
  if (!e) throw new FtpError(FILE_UNAVAILABLE, `No such file or directory: ${path}`);
  return e;
}

async function mustFile(s: Session, path: string): Promise<FileEntry> {
  const e = await must(s, path);
  if (e.kind !== "file") throw new FtpError(FILE_UNAVAILABLE, `Not a plain file: ${path}`);
  return e;
}

/**
 * Applies a delete, rename or rmdir on the slaves in `names` (every known slave when null).
 * A delete or rename a slave cannot take now (offline, or failing) is queued for it and replayed
 * after its next remerge, so its old inventory never brings the file back.
 */
export async function applyOnSlaves(
  s: Session,
  names: readonly string[] | null,
  op: QueuedOp | { op: "rmdir"; path: string },
): Promise<void> {
  const reg = s.services.slaves;
  const targets = names ?? await reg.known();
  await Promise.all(targets.map(async (name) => {
    const slave = reg.get(name);
    try {
      if (!slave) throw new Error("offline");
      if (op.op === "delete") await slave.request("delete", { path: op.path });
      else if (op.op === "rename") {
        await slave.request("rename", { from: op.from, to: op.to });
      } else await slave.request("rmdir", { path: op.path });
    } catch (e) {
      if (e instanceof SlaveReplyError && (e.code === "not_found" || e.code === "not_a_file")) {
        return;
      }
      if (op.op === "rmdir") return;
      log.info("Queued {op} for slave {slave}: {why}", {
        op: op.op,
        slave: name,
        why: e instanceof Error ? e.message : String(e),
      });
      await reg.queue.add(name, op);
    }
  }));
}

/** MKD */
export async function mkd(s: Session, _arg: string, path: string | null): Promise<void> {
  const u = s.user!;
  using _held = s.services.locks.change(path!);
  await s.services.filelist.mkdir(path!, u.name, u.primaryGroup);
  await s.reply(PATH_CREATED, `${quotePath(path!)} created`);
}

/** RMD */
export async function rmd(s: Session, _arg: string, path: string | null): Promise<void> {
  if (path === "/") throw new FtpError(FILE_UNAVAILABLE, "Cannot remove the root directory");
  using _held = s.services.locks.change(path!);
  s.services.slaves.noteChange({ op: "rmdir", path: path! }); // before the filelist: see registry
  await s.services.filelist.rmdir(path!);
  await applyOnSlaves(s, null, { op: "rmdir", path: path! });
  await s.reply(FILE_ACTION_OK, `Directory ${path} removed`);
}

/** DELE */
export async function dele(s: Session, _arg: string, path: string | null): Promise<void> {
  using _held = s.services.locks.change(path!);
  await mustFile(s, path!);
  s.services.slaves.noteChange({ op: "delete", path: path! });
  const gone = await s.services.filelist.deleteFile(path!);
  await applyOnSlaves(s, gone.slaves, { op: "delete", path: path! });
  log.info("{who} deleted {path}", { who: s.who, path });
  await s.reply(FILE_ACTION_OK, `File ${path} deleted`);
}

/** RNFR */
export async function rnfr(s: Session, _arg: string, path: string | null): Promise<void> {
  s.services.locks.check(path!);
  await must(s, path!);
  s.renameFrom = path;
  await s.reply(PENDING_MORE_INFO, `${path} exists; send RNTO`);
}

/** RNTO */
export async function rnto(s: Session, _arg: string, path: string | null): Promise<void> {
  const from = s.renameFrom;
  s.renameFrom = null;
  if (from === null) throw new FtpError(BAD_SEQUENCE, "Send RNFR first");
  const to = path!;
  if (to === from) throw new FtpError(NAME_NOT_ALLOWED, "Source and target are the same");
  if (to.startsWith(from + "/")) {
    throw new FtpError(NAME_NOT_ALLOWED, "Cannot move a directory into itself");
  }
  using _held = s.services.locks.change(from, to);
  const e = await must(s, from);
  s.services.slaves.noteChange({ op: "rename", from, to });
  await s.services.filelist.rename(from, to);
  const holders = e.kind === "file" ? e.slaves : null;
  await applyOnSlaves(s, holders, { op: "rename", from, to });
  await s.reply(FILE_ACTION_OK, `Renamed ${from} to ${to}`);
}

/** SIZE */
export async function size(s: Session, _arg: string, path: string | null): Promise<void> {
  const f = await mustFile(s, path!);
  await s.reply(FILE_STATUS, String(f.size));
}

/** MDTM */
export async function mdtm(s: Session, _arg: string, path: string | null): Promise<void> {
  const e = await must(s, path!);
  await s.reply(FILE_STATUS, formatMdtm(e.mtime));
}

/**
 * MFMT (draft-somers-ftp-mfxx): the filelist takes the new time, then every holder of a file
 * (or every online slave, for a directory) sets it on disk, best effort: the filelist is what
 * clients see, and a slave that missed it keeps its own time until its files are rewritten.
 */
export async function mfmt(s: Session, arg: string, path: string | null): Promise<void> {
  let mtime: number;
  try {
    mtime = parseMfmtArg(arg).ms;
  } catch {
    const word = splitWord(arg).word.slice(0, 64);
    throw new FtpError(
      SYNTAX_ERROR_ARGS,
      `Invalid time "${word}": use MFMT YYYYMMDDHHMMSS <path> (UTC)`,
    );
  }
  if (path === "/") {
    throw new FtpError(FILE_UNAVAILABLE, "Cannot change the time of the root directory");
  }
  await must(s, path!);
  const e = await s.services.filelist.setMtime(path!, mtime);
  const reg = s.services.slaves;
  const names = e.kind === "file" ? e.slaves : await reg.known();
  await Promise.all(names.map(async (name) => {
    try {
      await reg.get(name)?.request("set_mtime", { path: path!, mtime });
    } catch (err) {
      log.info("Slave {slave} did not set the time of {path}: {why}", {
        slave: name,
        path,
        why: err instanceof Error ? err.message : String(err),
      });
    }
  }));
  await s.reply(FILE_STATUS, `Modify=${formatMdtm(mtime)}; ${path}`);
}

/** MLST */
export async function mlst(s: Session, _arg: string, path: string | null): Promise<void> {
  const e = await must(s, path!);
  await s.reply(FILE_ACTION_OK, [`Listing ${path}`, formatMlstLine(e, path!), "End"]);
}

/** How many times XCRC recomputes a CRC when the file changes while a slave computes it. */
const XCRC_ATTEMPTS = 3;

/**
 * XCRC: from the filelist, or computed by a holder and remembered. The CRC is written back only
 * if the file's record is unchanged since it was read (`setCrc32` checks its version): an upload
 * finishing meanwhile is never overwritten with the old size and holders; XCRC then starts over
 * on the new record, and gives up with 450 after a few such changes.
 */
export async function xcrc(s: Session, _arg: string, path: string | null): Promise<void> {
  const fl = s.services.filelist;
  for (let attempt = 0; attempt < XCRC_ATTEMPTS; attempt++) {
    const got = await fl.getFileVersion(path!);
    if (!got) {
      await mustFile(s, path!); // 550 naming why
      throw new FtpError(FILE_UNAVAILABLE, `Not a plain file: ${path}`);
    }
    const { file: f, version } = got;
    if (f.crc32 !== null) return await replyCrc(s, f.crc32);
    const slave = s.services.slaves.choose({
      kind: "download",
      path: path!,
      holders: f.slaves,
      resuming: false,
    });
    const r = await slave.request("checksum", { path: path! });
    const crc = r.crc32;
    // The slave's file is not the recorded one (a size mismatch): answer, remember nothing.
    if (r.size !== f.size) return await replyCrc(s, crc);
    if (await fl.setCrc32(path!, crc, version)) return await replyCrc(s, crc);
    log.info("{path} changed while its CRC was computed; again", { path });
  }
  throw new FtpError(FILE_UNAVAILABLE_BUSY, `${path} keeps changing; try XCRC again later`);
}

async function replyCrc(s: Session, crc: number): Promise<void> {
  await s.reply(FILE_ACTION_OK, crc.toString(16).toUpperCase().padStart(8, "0"));
}
