/**
 * Parsers and formatters for FTP command arguments and reply bodies: PORT/PASV (RFC 959),
 * EPRT/EPSV (RFC 2428), TYPE, REST (RFC 3659), MDTM/MFMT times, and IP address helpers.
 *
 * Errors: TypeError for malformed input (reply 501), RangeError for well-formed input that is
 * out of range or unsupported (PORT/EPRT numbers → 501; TYPE E / L 16 → 504),
 * {@linkcode UnsupportedFamilyError} for an EPRT/EPSV address family other than 1 or 2 (522).
 * Messages name the argument: `Invalid PORT argument: "x"`.
 */

/** An EPRT/EPSV network protocol other than 1 (IPv4) or 2 (IPv6); reply 522. */
export class UnsupportedFamilyError extends Error {
  /** The family as the client sent it. */
  readonly family: string;
  /** Creates the error. */
  constructor(family: string) {
    super(`Unsupported network protocol: "${family}"`);
    this.name = "UnsupportedFamilyError";
    this.family = family;
  }
}

/** A data-connection target from PORT or EPRT. */
export interface HostPort {
  /** IP address, as text. */
  host: string;
  /** TCP port, 1-65535. */
  port: number;
}

/** An EPRT target: host, port, and address family (1 = IPv4, 2 = IPv6). */
export interface EprtTarget extends HostPort {
  /** 1 = IPv4, 2 = IPv6. */
  family: 1 | 2;
}

/** What an EPSV argument asks for. */
export type EpsvArg =
  | { kind: "all" }
  | { kind: "family"; family: 1 | 2 }
  | { kind: "none" };

const DEC_OCTET = /^(?:0|[1-9]\d{0,2})$/;

/** Whether `s` is a dotted-quad IPv4 address (no leading zeros, each part 0-255). */
export function isIPv4(s: string): boolean {
  const parts = s.split(".");
  return parts.length === 4 && parts.every((p) => DEC_OCTET.test(p) && Number(p) <= 255);
}

/** The eight 16-bit groups of an IPv6 address, or null when `s` is not one (no zone ids). */
function parseIPv6(s: string): number[] | null {
  if (s.length === 0 || s.length > 45) return null;
  let tail: number[] = [];
  let text = s;
  const lastColon = s.lastIndexOf(":");
  const last = s.slice(lastColon + 1);
  if (last.includes(".")) {
    if (!isIPv4(last)) return null;
    const o = last.split(".").map(Number) as [number, number, number, number];
    tail = [(o[0] << 8) | o[1], (o[2] << 8) | o[3]];
    // Drop the IPv4 part and its separating ":" (but keep a "::" right before it).
    text = s.slice(0, lastColon + 1);
    if (!text.endsWith("::")) text = s.slice(0, lastColon);
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const group = /^[0-9a-fA-F]{1,4}$/;
  const parse = (h: string): number[] | null => {
    if (h === "") return [];
    const gs = h.split(":");
    return gs.every((g) => group.test(g)) ? gs.map((g) => parseInt(g, 16)) : null;
  };
  const head = parse(halves[0]!);
  if (head === null) return null;
  if (halves.length === 1) {
    const all = [...head, ...tail];
    return all.length === 8 ? all : null;
  }
  const rest = parse(halves[1]!);
  if (rest === null) return null;
  const known = head.length + rest.length + tail.length;
  if (known > 7) return null;
  return [...head, ...new Array<number>(8 - known).fill(0), ...rest, ...tail];
}

/** Whether `s` is an IPv6 address in any RFC 4291 text form (zone ids are not accepted). */
export function isIPv6(s: string): boolean {
  return parseIPv6(s) !== null;
}

/**
 * The IPv4 address inside an IPv4-mapped IPv6 address (`"::ffff:1.2.3.4"`,
 * `"::ffff:102:304"`, `"0:0:0:0:0:ffff:1.2.3.4"` → `"1.2.3.4"`); any other string is
 * returned unchanged.
 */
export function unmapIPv4(s: string): string {
  const g = parseIPv6(s);
  if (g === null || g[5] !== 0xffff || g.slice(0, 5).some((x) => x !== 0)) return s;
  const hi = g[6]!;
  const lo = g[7]!;
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`Invalid ${what} port: "${port}"`);
  }
}

/**
 * Parses a PORT argument `h1,h2,h3,h4,p1,p2` (exactly six decimal numbers 0-255) into
 * `{host: "h1.h2.h3.h4", port: p1*256+p2}`. Port 0 is rejected. Bounce protection (other
 * host, port < 1024) is the caller's job.
 */
export function parsePortArg(arg: string): HostPort {
  const parts = arg.split(",");
  if (parts.length !== 6 || !parts.every((p) => /^\d{1,3}$/.test(p))) {
    throw new TypeError(`Invalid PORT argument: "${arg}"`);
  }
  const n = parts.map(Number) as [number, number, number, number, number, number];
  if (n.some((x) => x > 255)) throw new RangeError(`Invalid PORT argument: "${arg}"`);
  const port = n[4] * 256 + n[5];
  if (port === 0) throw new RangeError(`Invalid PORT argument: "${arg}"`);
  return { host: `${n[0]}.${n[1]}.${n[2]}.${n[3]}`, port };
}

/**
 * The text of a 227 reply: `Entering Passive Mode (127,0,0,2,195,80).` An IPv4-mapped IPv6
 * host is unmapped first; any other non-IPv4 host throws TypeError (use EPSV).
 */
export function formatPasvReply(host: string, port: number): string {
  const v4 = unmapIPv4(host);
  if (!isIPv4(v4)) throw new TypeError(`Invalid PASV host, not IPv4: "${host}"`);
  checkPort(port, "PASV");
  return `Entering Passive Mode (${v4.replaceAll(".", ",")},${port >> 8},${port & 0xff}).`;
}

/**
 * Parses an EPRT argument `<d>af<d>addr<d>port<d>` (RFC 2428), where `<d>` is any character
 * 33-126: `|1|132.235.1.2|6275|`, `|2|::1|5282|`. Throws UnsupportedFamilyError for a numeric
 * family other than 1 or 2, TypeError for bad syntax or an address not of its family,
 * RangeError for a port outside 1-65535. The host is returned as sent.
 */
export function parseEprtArg(arg: string): EprtTarget {
  const bad = () => new TypeError(`Invalid EPRT argument: "${arg}"`);
  const d = arg.charCodeAt(0);
  if (!(d >= 33 && d <= 126)) throw bad();
  const parts = arg.split(arg[0]!);
  if (parts.length !== 5 || parts[0] !== "" || parts[4] !== "") throw bad();
  const [, af, host, portText] = parts as [string, string, string, string, string];
  if (!/^\d+$/.test(af)) throw bad();
  if (af !== "1" && af !== "2") throw new UnsupportedFamilyError(af);
  const family = af === "1" ? 1 : 2;
  if (family === 1 ? !isIPv4(host) : !isIPv6(host)) throw bad();
  if (!/^\d{1,5}$/.test(portText)) throw bad();
  const port = Number(portText);
  if (port < 1 || port > 65535) throw new RangeError(`Invalid EPRT argument: "${arg}"`);
  return { host, port, family };
}

/** The text of a 229 reply: `Entering Extended Passive Mode (|||6446|)`. */
export function formatEpsvReply(port: number): string {
  checkPort(port, "EPSV");
  return `Entering Extended Passive Mode (|||${port}|)`;
}

/**
 * Parses an EPSV argument: "" → none, "ALL" (any case) → all, "1"/"2" → that family.
 * Another number throws UnsupportedFamilyError (522); anything else TypeError (501).
 */
export function parseEpsvArg(arg: string): EpsvArg {
  if (arg === "") return { kind: "none" };
  if (arg.toUpperCase() === "ALL") return { kind: "all" };
  if (arg === "1") return { kind: "family", family: 1 };
  if (arg === "2") return { kind: "family", family: 2 };
  if (/^\d+$/.test(arg)) throw new UnsupportedFamilyError(arg);
  throw new TypeError(`Invalid EPSV argument: "${arg}"`);
}

/**
 * Parses a TYPE argument (case-insensitive): "A" and "A N" → "A"; "I" and "L 8" → "I".
 * Other known types or formats ("E", "A T", "A C", "L 16") throw RangeError (504);
 * anything else TypeError (501).
 */
export function parseTypeArg(arg: string): "A" | "I" {
  const words = arg.trim().toUpperCase().split(/\s+/);
  const [t, f] = words;
  if (words.length <= 2) {
    if (t === "A" && (f === undefined || f === "N")) return "A";
    if (t === "I" && f === undefined) return "I";
    if (t === "L" && f === "8") return "I";
    if (
      ((t === "A" || t === "E") && (f === undefined || /^[NTC]$/.test(f))) ||
      (t === "L" && f !== undefined && /^\d+$/.test(f))
    ) {
      throw new RangeError(`Unsupported TYPE argument: "${arg}"`);
    }
  }
  throw new TypeError(`Invalid TYPE argument: "${arg}"`);
}

/**
 * Parses a REST argument: a decimal byte offset, a non-negative safe integer.
 * Throws TypeError when not a plain number, RangeError when too large.
 */
export function parseRestArg(arg: string): number {
  if (!/^\d+$/.test(arg)) throw new TypeError(`Invalid REST argument: "${arg}"`);
  const n = Number(arg);
  if (!Number.isSafeInteger(n)) throw new RangeError(`Invalid REST argument: "${arg}"`);
  return n;
}

/**
 * Formats ms since the epoch as an RFC 3659 time-val in UTC, `YYYYMMDDHHMMSS` (whole seconds,
 * rounded down). Throws RangeError outside years 0000-9999.
 */
export function formatMdtm(ms: number): string {
  const d = new Date(ms);
  const year = d.getUTCFullYear();
  if (!(year >= 0 && year <= 9999)) {
    throw new RangeError(`Invalid time for MDTM: "${ms}"`);
  }
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${p(year, 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}` +
    `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

const TIME_VAL = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d+))?$/;

/**
 * Parses an RFC 3659 time-val `YYYYMMDDHHMMSS[.sss]` (UTC) to ms since the epoch. Fractions
 * beyond milliseconds are truncated; second 60 (leap second) is accepted. Throws TypeError for
 * bad syntax, RangeError for an impossible date such as month 13 or February 30.
 */
export function parseMdtm(s: string): number {
  const m = TIME_VAL.exec(s);
  if (m === null) throw new TypeError(`Invalid time value: "${s}"`);
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const frac = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, "0"));
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60) {
    throw new RangeError(`Invalid time value: "${s}"`);
  }
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  if (date.getUTCMonth() !== mo - 1) throw new RangeError(`Invalid time value: "${s}"`);
  date.setUTCHours(h, mi, sec, frac);
  return date.getTime();
}

/** Splits an argument at its first space: `MFMT <time> <path>` → word and the rest (may be ""). */
export function splitWord(arg: string): { word: string; rest: string } {
  const sp = arg.indexOf(" ");
  if (sp < 0) return { word: arg, rest: "" };
  return { word: arg.slice(0, sp), rest: arg.slice(sp + 1) };
}

/** Parses the time of an MFMT command (same `YYYYMMDDHHMMSS[.sss]` form as `parseMdtm`). */
export function parseMfmtTime(s: string): number {
  return parseMdtm(s);
}

/**
 * Parses a whole MFMT argument `YYYYMMDDHHMMSS[.sss] <path>`: the time, one space, then the
 * path (the rest of the line, may contain spaces, must not be empty). Throws like `parseMdtm`.
 */
export function parseMfmtArg(arg: string): { ms: number; path: string } {
  const { word, rest } = splitWord(arg);
  if (rest === "") throw new TypeError(`Invalid MFMT argument: "${arg}"`);
  return { ms: parseMdtm(word), path: rest };
}
