/**
 * The one raw FTP control client of the tests and the bench: exact reply codes, multi-line
 * replies, a deadline on every read, optional AUTH TLS, and passive transfers.
 *
 * @module
 */

import { readAll, writeAll } from "../shared/bytes.ts";
import { deadline } from "../shared/timers.ts";

export { readAll };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One FTP reply. `lines` holds every line as received (without CRLF). */
export interface FtpReply {
  code: number;
  /** Text of the reply: the last line without its code, or all lines joined for multi-line. */
  text: string;
  lines: string[];
}

/** Parses "227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)". */
export function parse227(text: string): { host: string; port: number } {
  const m = /(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)/.exec(text);
  if (!m) throw new SyntaxError(`Cannot parse 227 reply: "${text}"`);
  const n = m.slice(1).map(Number);
  return { host: n.slice(0, 4).join("."), port: n[4]! * 256 + n[5]! };
}

/** Parses the port of "229 Entering Extended Passive Mode (|||port|)". */
export function parse229(text: string): number {
  const m = /\((.)\1\1(\d+)\1\)/.exec(text);
  if (!m) throw new SyntaxError(`Cannot parse 229 reply: "${text}"`);
  return Number(m[2]);
}

/**
 * A raw FTP control connection for asserting exact reply codes. It reads multi-line replies
 * ("123-…" up to "123 …") correctly, and every read has a deadline. It allocates little per
 * command, so the bench can run hundreds of them without the client costing the server CPU.
 */
export class FtpControl implements AsyncDisposable {
  #conn: Deno.TcpConn | Deno.TlsConn;
  #buffer = "";
  #chunk = new Uint8Array(16384);
  #closed = false;
  /** The 220 greeting. */
  greeting: FtpReply = { code: 0, text: "", lines: [] };
  /** Per-reply read deadline. */
  timeoutMs: number;

  private constructor(conn: Deno.TcpConn, timeoutMs: number) {
    this.#conn = conn;
    this.timeoutMs = timeoutMs;
  }

  /** Connects and reads the greeting; `timeoutMs` is the per-reply deadline (default 20 s). */
  static async connect(
    address: { host: string; port: number },
    options: { timeoutMs?: number } = {},
  ): Promise<FtpControl> {
    const { host, port } = address;
    const timeoutMs = options.timeoutMs ?? 20_000;
    const conn = await Deno.connect({ hostname: host, port });
    const ftp = new FtpControl(conn, timeoutMs);
    try {
      ftp.greeting = await ftp.read();
    } catch (error) {
      ftp.close();
      throw error;
    }
    return ftp;
  }

  /** Connects, checks the 220 greeting, logs in (USER/PASS → 230) and switches to TYPE I. */
  static async login(
    address: { host: string; port: number },
    options: { user: string; pass: string; timeoutMs?: number; caCerts?: string[] },
  ): Promise<FtpControl> {
    const { user, pass } = options;
    const ftp = await FtpControl.connect(address, options);
    try {
      if (ftp.greeting.code !== 220) {
        throw new Error(`Expected 220 greeting, got ${ftp.greeting.lines.join(" | ")}`);
      }
      if (options.caCerts) await ftp.startTls(options.caCerts);
      let r = await ftp.send(`USER ${user}`);
      if (r.code === 331) r = await ftp.send(`PASS ${pass}`);
      if (r.code !== 230) throw new Error(`Login failed: ${r.lines.join(" | ")}`);
      r = await ftp.send("TYPE I");
      if (r.code !== 200) throw new Error(`TYPE I failed: ${r.lines.join(" | ")}`);
    } catch (error) {
      ftp.close();
      throw error;
    }
    return ftp;
  }

  /** The local address of the control connection (what EPSV/PASV would name for the master). */
  get localAddr(): Deno.NetAddr {
    return this.#conn.localAddr as Deno.NetAddr;
  }

  /** AUTH TLS, then a TLS handshake trusting `caCerts` (the site's certificate). */
  async startTls(caCerts: string[]): Promise<void> {
    const r = await this.send("AUTH TLS");
    if (r.code !== 234) throw new Error(`AUTH TLS refused: ${r.lines.join(" | ")}`);
    this.#conn = await Deno.startTls(this.#conn as Deno.TcpConn, {
      hostname: "127.0.0.1",
      caCerts,
    });
  }

  /** Sends one command line and reads its reply. */
  async send(command: string): Promise<FtpReply> {
    await this.write(command);
    return await this.read();
  }

  /** Sends one command and throws with the reply unless its code is `code`. */
  async expect(command: string, code: number): Promise<FtpReply> {
    const r = await this.send(command);
    if (r.code !== code) {
      throw new Error(`${command}: expected ${code}, got ${r.lines.join(" | ")}`);
    }
    return r;
  }

  /** Writes one command line without reading a reply. */
  async write(command: string): Promise<void> {
    await writeAll(this.#conn, encoder.encode(`${command}\r\n`));
  }

  /** Reads the next complete reply. */
  async read(): Promise<FtpReply> {
    const first = await this.#readLine();
    const m = /^(\d{3})([ -])(.*)$/.exec(first);
    if (!m) throw new Error(`Malformed reply line: "${first}"`);
    const code = Number(m[1]);
    const lines = [first];
    if (m[2] === " ") return { code, text: m[3]!, lines };
    const texts = [m[3]!];
    while (true) {
      const line = await this.#readLine();
      lines.push(line);
      if (line.startsWith(`${m[1]} `)) {
        texts.push(line.slice(4));
        break;
      }
      texts.push(line);
    }
    return { code, text: texts.join("\n"), lines };
  }

  /** PRET (when given) then PASV; returns the 227 endpoint or throws with the replies. */
  async pasv(pret?: string): Promise<{ host: string; port: number; reply: FtpReply }> {
    if (pret !== undefined) {
      const r = await this.send(`PRET ${pret}`);
      if (r.code !== 200) throw new Error(`PRET ${pret} refused: ${r.lines.join(" | ")}`);
    }
    const r = await this.send("PASV");
    if (r.code !== 227) throw new Error(`PASV refused: ${r.lines.join(" | ")}`);
    return { ...parse227(r.text), reply: r };
  }

  /** EPSV; returns the 229 port or throws with the reply. */
  async epsv(): Promise<{ port: number; reply: FtpReply }> {
    const r = await this.send("EPSV");
    if (r.code !== 229) throw new Error(`EPSV refused: ${r.lines.join(" | ")}`);
    return { port: parse229(r.text), reply: r };
  }

  /**
   * Runs one data command over an already announced passive endpoint: connects to it, sends
   * `command`, expects 150/125, then sends `options.upload` (closing the data connection after it) or
   * reads to EOF, and expects 226/250. Throws with the replies otherwise.
   */
  async transfer(
    endpoint: { host: string; port: number },
    command: string,
    options: { upload?: Uint8Array } = {},
  ): Promise<{ data: Uint8Array; reply: FtpReply }> {
    const { upload } = options;
    const data = await Deno.connect({ hostname: endpoint.host, port: endpoint.port });
    try {
      const r = await this.send(command);
      if (r.code !== 150 && r.code !== 125) {
        throw new Error(`${command} refused: ${r.lines.join(" | ")}`);
      }
      let bytes: Uint8Array = new Uint8Array(0);
      if (upload === undefined) {
        bytes = await deadline(readAll(data), {
          ms: this.timeoutMs,
          what: "data connection EOF",
        });
      } else {
        await writeAll(data, upload);
      }
      data.close();
      const done = await this.read();
      if (done.code !== 226 && done.code !== 250) {
        throw new Error(`${command} did not complete: ${done.lines.join(" | ")}`);
      }
      return { data: bytes, reply: done };
    } finally {
      try {
        data.close();
      } catch {
        // closed above
      }
    }
  }

  /**
   * Downloads through PRET RETR + PASV (+ REST when `rest` is given) and returns the bytes.
   * Asserts the usual 150/125 … 226 sequence and throws with the replies otherwise.
   */
  async retrieve(path: string, rest?: number): Promise<{ data: Uint8Array; host: string }> {
    const endpoint = await this.pasv(`RETR ${path}`);
    if (rest !== undefined) {
      const r = await this.send(`REST ${rest}`);
      if (r.code !== 350) throw new Error(`REST ${rest} refused: ${r.lines.join(" | ")}`);
    }
    const { data } = await this.transfer(endpoint, `RETR ${path}`);
    return { data, host: endpoint.host };
  }

  /** Uploads through PRET STOR + PASV. */
  async store(path: string, bytes: Uint8Array): Promise<{ host: string; port: number }> {
    const endpoint = await this.pasv(`STOR ${path}`);
    await this.transfer(endpoint, `STOR ${path}`, { upload: bytes });
    return { host: endpoint.host, port: endpoint.port };
  }

  /** QUIT (best effort) and close. */
  async quit(): Promise<void> {
    if (this.#closed) return;
    this.timeoutMs = Math.min(this.timeoutMs, 2000);
    try {
      await this.send("QUIT");
    } catch {
      // the server may have gone already
    }
    this.close();
  }

  /** Closes the connection; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.quit();
  }

  async #readLine(): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    try {
      while (true) {
        const nl = this.#buffer.indexOf("\n");
        if (nl >= 0) {
          const line = this.#buffer.slice(0, nl).replace(/\r$/, "");
          this.#buffer = this.#buffer.slice(nl + 1);
          return line;
        }
        if (this.#buffer.length > 65536) throw new Error("Reply line longer than 64 KiB");
        // armed only when we have to wait for bytes; a read still pending at the deadline
        // ends when the connection is closed
        timer ??= setTimeout(() => {
          timedOut = true;
          this.close();
        }, this.timeoutMs);
        let n: number | null;
        try {
          n = await this.#conn.read(this.#chunk);
        } catch (error) {
          throw timedOut ? new Error(`No reply within ${this.timeoutMs} ms`) : error;
        }
        if (n === null) {
          throw new Error(`Control connection closed (partial: "${this.#buffer}")`);
        }
        this.#buffer += decoder.decode(this.#chunk.subarray(0, n), { stream: true });
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * The codes of the replies after an `ABOR` sent during a transfer: the transfer's (426, or 226
 * when it ended first) up to the ABOR's own (226), at most three.
 */
export async function aborReplies(ftp: FtpControl): Promise<number[]> {
  const replies: FtpReply[] = [];
  while (replies.length < 3) {
    const reply = await ftp.read();
    replies.push(reply);
    if (reply.code < 400) break;
  }
  return replies.map((r) => r.code);
}
