/**
 * Directory listing formatters: LIST (`ls -l` style), NLST (names), MLSD/MLST facts
 * (RFC 3659 §7), and the parser that strips `ls` options from a LIST/NLST argument.
 *
 * Security: a name or owner containing CR or LF must never break a listing line. Every C0
 * control character (U+0000-U+001F, including CR and LF) and DEL (U+007F) in a name, owner or
 * group is replaced with "?", like `ls -q`. Times are shown in UTC.
 */
import type { Entry, FileEntry } from "../filelist/types.ts";
import { formatMdtm } from "./codecs.ts";

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Half a Gregorian year in ms: older entries show the year instead of the time, like `ls`. */
const SIX_MONTHS_MS = (365.2425 / 2) * 24 * 3600 * 1000;
/** Entries up to this far in the future still count as recent (clock skew between slaves). */
const FUTURE_SLACK_MS = 3600 * 1000;

// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/g;

/** `s` with every control character (CR and LF included) replaced by "?". */
function printable(s: string): string {
  return s.replace(CONTROL, "?");
}

/** An owner or group name safe for an `ls` column: printable, no spaces. */
function column(s: string): string {
  return printable(s).replace(/\s/g, "_") || "-";
}

/** An owner or group name safe as an MLSx fact value: no ";", "=", spaces or controls. */
function factValue(s: string): string {
  return printable(s).replace(/[\s;=]/g, "_");
}

/** Options for {@linkcode formatListLine} and {@linkcode formatMlsxFacts}. */
export interface EntryFormatOptions {
  /** The file has no online slave: LIST shows `----------`, MLSx drops the "r" and "a" perms. */
  offline?: boolean;
}

/** Options for {@linkcode formatListing}. */
export interface ListingOptions {
  /** Decides per file whether it is offline (no online slave holds it). Default: none are. */
  isOffline?: (e: FileEntry) => boolean;
}

function listDate(mtime: number, now: number): string {
  const d = new Date(mtime);
  if (Number.isNaN(d.getTime())) return "Jan  1  1970";
  const month = MONTHS[d.getUTCMonth()]!;
  const day = String(d.getUTCDate()).padStart(2, " ");
  const recent = mtime > now - SIX_MONTHS_MS && mtime <= now + FUTURE_SLACK_MS;
  if (recent) {
    const hh = String(d.getUTCHours()).padStart(2, "0");
    const mm = String(d.getUTCMinutes()).padStart(2, "0");
    return `${month} ${day} ${hh}:${mm}`;
  }
  return `${month} ${day}  ${d.getUTCFullYear()}`;
}

/**
 * One `ls -l` style line, without a line end:
 * `-rw-r--r--   1 owner    group        1234 Nov 25 07:56 name`.
 *
 * Directories show `drwxr-xr-x` and size 0; an offline file shows `----------`. The date (UTC)
 * shows `HH:MM` when the entry is less than six months older than `now` (and at most an hour in
 * the future), otherwise ` YYYY`. Control characters in the name, owner and group become "?";
 * whitespace in owner and group becomes "_".
 */
export function formatListLine(e: Entry, now: number, options: EntryFormatOptions = {}): string {
  const perms = e.kind === "dir" ? "drwxr-xr-x" : options.offline ? "----------" : "-rw-r--r--";
  const size = e.kind === "file" ? e.size : 0;
  return `${perms} ${"1".padStart(3)} ${column(e.owner).padEnd(8)} ${column(e.group).padEnd(8)} ` +
    `${String(size).padStart(8)} ${listDate(e.mtime, now)} ${printable(e.name)}`;
}

/**
 * The entries a listing shows: all but files an upload is still resuming or a crash cut short
 * (`FileEntry.incomplete`), which must never look like complete files.
 */
export function listedEntries(entries: readonly Entry[]): Entry[] {
  return entries.filter((e) => e.kind === "dir" || !e.incomplete);
}

/** A LIST body: one {@linkcode formatListLine} per entry, each ending "\r\n" ("" when empty). */
export function formatListing(
  entries: readonly Entry[],
  now: number,
  options: ListingOptions = {},
): string {
  let out = "";
  for (const e of entries) {
    const offline = e.kind === "file" && options.isOffline !== undefined && options.isOffline(e);
    out += `${formatListLine(e, now, { offline })}\r\n`;
  }
  return out;
}

/** An NLST body: the names only, each ending "\r\n", control characters replaced by "?". */
export function formatNlst(entries: readonly Entry[]): string {
  let out = "";
  for (const e of entries) out += `${printable(e.name)}\r\n`;
  return out;
}

/** MDTM form of `ms`; a time that cannot be shown (NaN, year > 9999) shows as the epoch. */
function modifyFact(ms: number): string {
  try {
    return formatMdtm(ms);
  } catch {
    return formatMdtm(0);
  }
}

function facts(e: Entry, offline: boolean): string {
  const modify = modifyFact(e.mtime);
  const owner = `UNIX.owner=${factValue(e.owner)};UNIX.group=${factValue(e.group)};`;
  if (e.kind === "dir") return `type=dir;modify=${modify};perm=flcdmpe;${owner}`;
  const perm = offline ? "dfw" : "adfrw";
  return `type=file;size=${e.size};modify=${modify};perm=${perm};${owner}`;
}

/**
 * One MLSD line, without a line end (RFC 3659 §7):
 * `type=file;size=1234;modify=20261125075600;perm=adfrw;UNIX.owner=u;UNIX.group=g; name`,
 * for a directory `type=dir;modify=…;perm=flcdmpe;UNIX.owner=u;UNIX.group=g; name`.
 * `modify` is UTC (the epoch when the time cannot be shown). An offline file gets `perm=dfw` (no retrieve, no append). Owner and group
 * have whitespace, ";" and "=" replaced by "_"; control characters in the name become "?".
 */
export function formatMlsxFacts(e: Entry, options: EntryFormatOptions = {}): string {
  return `${facts(e, options.offline ?? false)} ${printable(e.name)}`;
}

/**
 * The fact line of an MLST reply, without a line end: exactly one leading space, the facts,
 * one space, then `path` (the full path of the object, not its base name), e.g.
 * ` type=dir;modify=20261125075600;perm=flcdmpe;UNIX.owner=u;UNIX.group=g; /a/b`.
 * Send it as the middle line of `formatReply(250, ["Listing /a/b", line, "End"])`, which keeps
 * the single leading space as is.
 */
export function formatMlstLine(
  e: Entry,
  path: string,
  options: EntryFormatOptions = {},
): string {
  return ` ${facts(e, options.offline ?? false)} ${printable(path)}`;
}

/**
 * Splits a LIST/NLST/STAT argument into leading `ls` option words and the path.
 *
 * Option words are leading words of the form `-<letters or digits>` (`-a`, `-la`, `-R`),
 * separated by spaces; `--` ends the options and is dropped, so `-- -weird` lists "-weird".
 * `options` is the option letters concatenated ("-la -R" → "laR"); `path` is the rest of the
 * argument as sent (may be "", may contain spaces).
 */
export function parseListArgs(arg: string): { path: string; options: string } {
  let options = "";
  let pos = 0;
  while (true) {
    let start = pos;
    while (arg[start] === " ") start++;
    let end = arg.indexOf(" ", start);
    if (end < 0) end = arg.length;
    const word = arg.slice(start, end);
    if (word === "--") {
      pos = end;
      break;
    }
    if (!/^-[A-Za-z0-9]+$/.test(word)) break;
    options += word.slice(1);
    pos = end;
  }
  if (pos === 0) return { path: arg, options };
  while (arg[pos] === " ") pos++;
  return { path: arg.slice(pos), options };
}
