/**
 * The transfer log in wu-ftpd `xferlog` format (what vsftpd and ProFTPD write too, and what log
 * analysers read): one line per finished transfer.
 *
 * ```
 * Sun Dec  6 16:49:03 2026 2 10.0.0.9 1048576 /incoming/a.bin b _ i r alice ftp 0 * c
 * ```
 *
 * Fields: local time (ctime format), seconds, client address, bytes, path, `a`scii/`b`inary,
 * special action (`_`), direction (`o` outgoing = download, `i` incoming = upload), access mode
 * (`r` real user), user, service (`ftp`), authentication method (`0`), authenticated user id
 * (`*`), completion (`c` complete, `i` incomplete).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { FinishedTransfer, SiteMetrics } from "./metrics.ts";

const log = getLogger(["drftpd", "master", "xferlog"]);

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** One xferlog line (with its newline) for a finished transfer that ended at `end`. */
export function formatXferlogLine(t: FinishedTransfer, end: Date): string {
  const seconds = Math.max(1, Math.round(t.ms / 1000));
  return [
    ctime(end),
    seconds,
    field(t.remoteHost),
    t.bytes,
    field(t.path),
    t.ascii ? "a" : "b",
    "_",
    t.direction === "download" ? "o" : "i",
    "r",
    field(t.user),
    "ftp",
    "0",
    "*",
    t.outcome === "complete" ? "c" : "i",
  ].join(" ") + "\n";
}

/** `Sun Dec  6 16:49:03 2026` in local time, as C's ctime(3) writes it. */
export function ctime(d: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, " ")} ` +
    `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())} ${d.getFullYear()}`;
}

/** Fields are separated by spaces: whitespace and control characters in a value become `_`. */
function field(text: string): string {
  // deno-lint-ignore no-control-regex
  const s = text.replace(/[\s\x00-\x1f\x7f]/g, "_");
  return s === "" ? "_" : s;
}

/**
 * Appends a line to `path` for every transfer `metrics` reports finished, until closed. Lines
 * are written in order, one write each; a failing write is logged, never thrown.
 */
export class XferLog implements AsyncDisposable {
  #file: Deno.FsFile;
  #queue: Promise<void> = Promise.resolve();
  #unsubscribe: () => void;
  #encoder = new TextEncoder();
  readonly path: string;

  private constructor(path: string, file: Deno.FsFile, metrics: SiteMetrics) {
    this.path = path;
    this.#file = file;
    this.#unsubscribe = metrics.onFinished((t) => this.#write(formatXferlogLine(t, new Date())));
  }

  /** Opens (creating, mode 0640) `path` for appending and subscribes to `metrics`. */
  static async open(path: string, metrics: SiteMetrics): Promise<XferLog> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { append: true, create: true, mode: 0o640 });
    } catch (e) {
      throw new Error(
        `Cannot open the xferlog "${path}": ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    }
    return new XferLog(path, file, metrics);
  }

  #write(line: string): void {
    const bytes = this.#encoder.encode(line);
    this.#queue = this.#queue.then(async () => {
      let off = 0;
      while (off < bytes.length) off += await this.#file.write(bytes.subarray(off));
    }).catch((e) =>
      log.warn("Cannot write the xferlog {path}: {error}", { path: this.path, error: String(e) })
    );
  }

  /** Stops listening, writes what is queued, closes the file. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#unsubscribe();
    await this.#queue;
    this.#file.close();
  }
}
