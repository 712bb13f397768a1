/**
 * Reads FTP control lines from a byte connection: a hard per-line cap, Telnet IAC stripping,
 * CRLF or bare LF line ends, UTF-8 decoding. Memory use is fixed (two buffers of bounded size).
 */
import type { ByteConn } from "../../shared/link.ts";

/** Default longest control line, in bytes, not counting the line end (vsftpd uses 4096 too). */
export const DEFAULT_MAX_LINE_BYTES = 4096;

const READ_CHUNK = 4096;

const IAC = 0xff;
const SE = 0xf0;
const SB = 0xfa;
const WILL = 0xfb;
const DONT = 0xfe;
const CR = 0x0d;
const LF = 0x0a;

// Telnet parser states.
const DATA = 0;
/** Saw IAC. */
const AFTER_IAC = 1;
/** Saw IAC WILL/WONT/DO/DONT: drop the option byte. */
const OPTION = 2;
/** Inside IAC SB … IAC SE: drop everything. */
const SUB = 3;
/** Saw IAC inside a subnegotiation. */
const SUB_IAC = 4;

/** Raised by `ControlLineReader.readLine` when a line exceeds the cap; the session replies and closes. */
export class LineTooLongError extends Error {
  /** The cap that was exceeded, in bytes. */
  readonly maxLineBytes: number;
  /** Creates the error. */
  constructor(maxLineBytes: number) {
    super(`Control line too long: more than ${maxLineBytes} bytes`);
    this.name = "LineTooLongError";
    this.maxLineBytes = maxLineBytes;
  }
}

/** Options for {@linkcode ControlLineReader}. */
export interface ControlLineReaderOptions {
  /** Longest line accepted, in bytes, without its CR/LF. Default 4096. */
  maxLineBytes?: number;
}

/**
 * Splits a control connection into lines.
 *
 * - Lines end with "\r\n" or a bare "\n"; the end is not returned. A CR not followed by LF stays
 *   in the line.
 * - Telnet commands are removed: IAC IAC becomes a literal 0xFF byte, IAC WILL/WONT/DO/DONT drop
 *   their option byte, IAC SB … IAC SE is dropped whole, any other IAC x (IP, DM, …) is dropped.
 *   So `\xff\xf4\xff\xf2ABOR\r\n` reads as "ABOR".
 * - Bytes are decoded as UTF-8 without failing (invalid bytes become U+FFFD).
 * - A line longer than `maxLineBytes` throws {@linkcode LineTooLongError}; if the caller keeps
 *   reading anyway, the rest of that line is skipped.
 *
 * Not safe for concurrent `readLine` calls: await each one before the next.
 */
export class ControlLineReader {
  #conn: ByteConn;
  #max: number;
  #chunk = new Uint8Array(READ_CHUNK);
  #pos = 0;
  #end = 0;
  /** The line so far; one spare byte for a CR that may turn out to be a line end. */
  #line: Uint8Array;
  #len = 0;
  #state = DATA;
  #skipping = false;
  #eof = false;
  #decoder = new TextDecoder("utf-8", { fatal: false });

  /** Reads from `conn`; the caller still owns (and closes) the connection. */
  constructor(conn: ByteConn, options: ControlLineReaderOptions = {}) {
    const max = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new RangeError(`Invalid maxLineBytes: "${max}"`);
    }
    this.#conn = conn;
    this.#max = max;
    this.#line = new Uint8Array(max + 1);
  }

  /** Bytes read from the connection but not yet returned as a line. */
  get buffered(): number {
    return this.#end - this.#pos + this.#len;
  }

  /** The next line without its CR/LF, or null at end of stream. Throws LineTooLongError. */
  async readLine(): Promise<string | null> {
    while (true) {
      while (this.#pos < this.#end) {
        const b = this.#chunk[this.#pos++]!;
        const line = this.#feed(b);
        if (line !== null) return line;
      }
      if (this.#eof) break;
      const n = await this.#conn.read(this.#chunk);
      if (n === null) {
        this.#eof = true;
        break;
      }
      this.#pos = 0;
      this.#end = n;
    }
    // End of stream: hand out a partial line once, then null.
    const skipped = this.#skipping;
    this.#skipping = false;
    if (this.#len === 0 || skipped) {
      this.#len = 0;
      return null;
    }
    return this.#finish();
  }

  /** Feeds one raw byte; returns a finished line or null. */
  #feed(b: number): string | null {
    switch (this.#state) {
      case AFTER_IAC:
        if (b === IAC) {
          this.#state = DATA;
          return this.#data(IAC);
        }
        if (b >= WILL && b <= DONT) this.#state = OPTION;
        else if (b === SB) this.#state = SUB;
        else this.#state = DATA;
        return null;
      case OPTION:
        this.#state = DATA;
        return null;
      case SUB:
        if (b === IAC) this.#state = SUB_IAC;
        return null;
      case SUB_IAC:
        this.#state = b === SE ? DATA : SUB;
        return null;
      default: // DATA
        if (b === IAC) {
          this.#state = AFTER_IAC;
          return null;
        }
        return this.#data(b);
    }
  }

  /** Handles one data byte (after Telnet processing). */
  #data(b: number): string | null {
    if (b === LF) {
      if (this.#skipping) {
        this.#skipping = false;
        this.#len = 0;
        return null;
      }
      return this.#finish();
    }
    if (this.#skipping) return null;
    if (this.#len > this.#max) {
      // Already max+1 bytes: either max bytes plus a CR that is not a line end, or more.
      this.#len = 0;
      this.#skipping = true;
      throw new LineTooLongError(this.#max);
    }
    this.#line[this.#len++] = b;
    return null;
  }

  /** Ends the current line: drops a trailing CR, enforces the cap, decodes. */
  #finish(): string {
    if (this.#len > 0 && this.#line[this.#len - 1] === CR) this.#len--;
    if (this.#len > this.#max) {
      this.#len = 0;
      throw new LineTooLongError(this.#max);
    }
    const s = this.#decoder.decode(this.#line.subarray(0, this.#len));
    this.#len = 0;
    return s;
  }
}
