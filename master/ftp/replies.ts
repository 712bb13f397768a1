/**
 * FTP reply codes, named after their RFC 959 / 2228 / 2428 / 4217 meaning (every reply the
 * server sends uses these names; a code the server never sends has none), and the reply
 * formatter that produces the exact wire text (the session encodes it as UTF-8).
 *
 * Security: `formatReply` is the only place reply text becomes wire text. It splits on every
 * CR and LF and prefixes every inner line of a multi-line reply with a space, so no text
 * (a file name, a user name) can ever forge a reply line such as "226 fake".
 */

// 1xx: positive preliminary.
/** 150 File status okay; about to open data connection. */
export const FILE_STATUS_OK_OPENING = 150;

// 2xx: positive completion.
/** 200 Command okay. */
export const OK = 200;
/** 202 Command not implemented, superfluous at this site. */
export const SUPERFLUOUS = 202;
/** 211 System status, or system help reply (FEAT). */
export const SYSTEM_STATUS = 211;
/** 213 File status (SIZE, MDTM, MFMT, STAT of a file). */
export const FILE_STATUS = 213;
/** 214 Help message. */
export const HELP = 214;
/** 215 NAME system type. */
export const SYSTEM_TYPE = 215;
/** 220 Service ready for new user. */
export const READY_FOR_NEW_USER = 220;
/** 221 Service closing control connection. */
export const CLOSING_CONTROL = 221;
/** 225 Data connection open; no transfer in progress (ABOR with nothing to abort). */
export const DATA_OPEN_NO_TRANSFER = 225;
/** 226 Closing data connection; requested file action successful. */
export const CLOSING_DATA = 226;
/** 227 Entering Passive Mode (h1,h2,h3,h4,p1,p2). */
export const ENTERING_PASSIVE = 227;
/** 229 Entering Extended Passive Mode (|||port|). */
export const ENTERING_EXT_PASSIVE = 229;
/** 230 User logged in, proceed. */
export const LOGGED_IN = 230;
/** 234 Security data exchange complete (AUTH TLS accepted). */
export const AUTH_OK = 234;
/** 250 Requested file action okay, completed. */
export const FILE_ACTION_OK = 250;
/** 257 "PATHNAME" created (also PWD). */
export const PATH_CREATED = 257;

// 3xx: positive intermediate.
/** 331 User name okay, need password. */
export const USER_OK_NEED_PASSWORD = 331;
/** 350 Requested file action pending further information (REST, RNFR). */
export const PENDING_MORE_INFO = 350;

// 4xx: transient negative completion.
/** 421 Service not available, closing control connection. */
export const NOT_AVAILABLE_CLOSING = 421;
/** 425 Can't open data connection. */
export const CANT_OPEN_DATA = 425;
/** 426 Connection closed; transfer aborted. */
export const TRANSFER_ABORTED = 426;
/** 450 Requested file action not taken; file unavailable (busy; DrFTPD: slave unavailable). */
export const FILE_UNAVAILABLE_BUSY = 450;
/** 451 Requested action aborted: local error in processing. */
export const ACTION_NOT_TAKEN_LOCAL = 451;

// 5xx: permanent negative completion.
/** 500 Syntax error, command unrecognized (also "line too long"). */
export const SYNTAX_ERROR = 500;
/** 501 Syntax error in parameters or arguments. */
export const SYNTAX_ERROR_ARGS = 501;
/** 502 Command not implemented. */
export const NOT_IMPLEMENTED = 502;
/** 503 Bad sequence of commands. */
export const BAD_SEQUENCE = 503;
/** 504 Command not implemented for that parameter. */
export const NOT_IMPLEMENTED_FOR_PARAM = 504;
/** 521 Data connection cannot be opened with this PROT setting (RFC 4217: PROT P required). */
export const PROT_REQUIRED = 521;
/** 522 Network protocol not supported (EPRT/EPSV family), or data-connection TLS failed. */
export const PROTOCOL_NOT_SUPPORTED = 522;
/** 530 Not logged in. */
export const NOT_LOGGED_IN = 530;
/** 534 Request denied for policy reasons (RFC 2228). */
export const DENIED_BY_POLICY = 534;
/** 536 Requested PROT level not supported by mechanism (RFC 2228). */
export const PROT_LEVEL_NOT_SUPPORTED = 536;
/** 550 Requested action not taken; file unavailable (not found, no access). */
export const FILE_UNAVAILABLE = 550;
/** 553 Requested action not taken: file name not allowed. */
export const NAME_NOT_ALLOWED = 553;

const LINE_BREAK = /\r\n|\r|\n/;

/**
 * The wire text of a reply, CRLF-terminated.
 *
 * - One line: `"226 Done\r\n"`.
 * - Several lines (an array of more than one line, or text containing CR or LF): RFC 959
 *   multi-line form `"211-first\r\n inner\r\n211 last\r\n"`. Every inner line starts with a
 *   space: one is prefixed unless the line already starts with one, so FEAT features may be
 *   passed as "UTF8" or " UTF8" and an MLST fact line from `formatMlstLine` (which carries its
 *   own leading space) goes out unchanged. An empty inner line becomes `" "`.
 * - CR and LF are never emitted inside a line: every CRLF, CR or LF splits the text.
 * - An empty array is treated as `[""]`.
 *
 * U+00FF ("ÿ") is not doubled: replies are sent as UTF-8, where that character is the bytes
 * C3 BF, and a raw 0xFF (Telnet IAC) byte cannot occur, so no IAC escaping is needed.
 *
 * Throws RangeError for a code that is not an integer 100-599.
 */
export function formatReply(code: number, text: string | readonly string[]): string {
  if (!Number.isInteger(code) || code < 100 || code > 599) {
    throw new RangeError(`Invalid reply code: "${code}"`);
  }
  const input = typeof text === "string" ? [text] : text.length === 0 ? [""] : text;
  const lines = input.flatMap((l) => l.split(LINE_BREAK));
  if (lines.length === 1) return `${code} ${lines[0]}\r\n`;
  let out = `${code}-${lines[0]}\r\n`;
  for (let i = 1; i < lines.length - 1; i++) {
    const l = lines[i]!;
    out += l.startsWith(" ") ? `${l}\r\n` : ` ${l}\r\n`;
  }
  return `${out}${code} ${lines[lines.length - 1]}\r\n`;
}

/**
 * A path quoted for a 257 reply (RFC 959 appendix II): every `"` doubled, then wrapped in
 * double quotes. `quotePath('/a"b')` is `"/a""b"`. Line breaks are left for `formatReply`.
 */
export function quotePath(path: string): string {
  return `"${path.replaceAll('"', '""')}"`;
}
