/**
 * A lean raw FTP control client for the bench: little allocation per command so that the client
 * costs as little CPU as possible (the server under test shares the machine with it).
 * Every read is bounded by the connection's deadline.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One reply: code and its lines. */
export interface Reply {
  code: number;
  lines: string[];
}

/** A raw FTP control connection. */
export class Ftp {
  #conn: Deno.TcpConn;
  #buf = "";
  #chunk = new Uint8Array(16384);
  #closed = false;
  timeoutMs: number;

  private constructor(conn: Deno.TcpConn, timeoutMs: number) {
    this.#conn = conn;
    this.timeoutMs = timeoutMs;
  }

  /** Connects and reads the 220 greeting. */
  static async connect(host: string, port: number, timeoutMs = 30_000): Promise<Ftp> {
    const conn = await Deno.connect({ hostname: host, port });
    const ftp = new Ftp(conn, timeoutMs);
    try {
      const g = await ftp.read();
      if (g.code !== 220) throw new Error(`greeting: ${g.lines.join(" | ")}`);
    } catch (e) {
      ftp.close();
      throw e;
    }
    return ftp;
  }

  /** Connects, logs in and sends TYPE I. */
  static async login(
    host: string,
    port: number,
    user: string,
    pass: string,
    timeoutMs = 30_000,
  ): Promise<Ftp> {
    const ftp = await Ftp.connect(host, port, timeoutMs);
    try {
      let r = await ftp.send(`USER ${user}`);
      if (r.code === 331) r = await ftp.send(`PASS ${pass}`);
      if (r.code !== 230) throw new Error(`login: ${r.lines.join(" | ")}`);
      await ftp.expect("TYPE I", 200);
    } catch (e) {
      ftp.close();
      throw e;
    }
    return ftp;
  }

  /** Sends a command and reads its reply. */
  async send(command: string): Promise<Reply> {
    await this.write(command);
    return await this.read();
  }

  /** Sends a command and throws unless the reply has code `code`. */
  async expect(command: string, code: number): Promise<Reply> {
    const r = await this.send(command);
    if (r.code !== code) {
      throw new Error(`${command}: expected ${code}, got ${r.lines.join(" | ")}`);
    }
    return r;
  }

  /** Writes one command line. */
  async write(command: string): Promise<void> {
    const data = encoder.encode(`${command}\r\n`);
    let off = 0;
    while (off < data.length) off += await this.#conn.write(data.subarray(off));
  }

  /** Reads one complete (possibly multi-line) reply. */
  async read(): Promise<Reply> {
    const first = await this.#line();
    const code = Number(first.slice(0, 3));
    if (!(code >= 100 && code < 600)) throw new Error(`malformed reply: "${first}"`);
    const lines = [first];
    if (first[3] === "-") {
      const end = `${first.slice(0, 3)} `;
      for (;;) {
        const l = await this.#line();
        lines.push(l);
        if (l.startsWith(end)) break;
      }
    }
    return { code, lines };
  }

  /** PRET (when given) + PASV; returns the data endpoint. */
  async pasv(pret?: string): Promise<{ host: string; port: number }> {
    if (pret !== undefined) await this.expect(`PRET ${pret}`, 200);
    const r = await this.expect("PASV", 227);
    const m = /(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)/.exec(r.lines[0]!);
    if (!m) throw new Error(`cannot parse ${r.lines[0]}`);
    const n = m.slice(1).map(Number);
    return { host: n.slice(0, 4).join("."), port: n[4]! * 256 + n[5]! };
  }

  /** QUIT (best effort, bounded) and close. */
  async quit(): Promise<void> {
    if (this.#closed) return;
    const saved = this.timeoutMs;
    this.timeoutMs = 2000;
    await this.send("QUIT").catch(() => {});
    this.timeoutMs = saved;
    this.close();
  }

  /** Closes the connection (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // closed
    }
  }

  async #line(): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      for (;;) {
        const nl = this.#buf.indexOf("\n");
        if (nl >= 0) {
          const line = this.#buf.slice(0, nl).replace(/\r$/, "");
          this.#buf = this.#buf.slice(nl + 1);
          return line;
        }
        // the timer is armed only when we actually have to wait for bytes
        timer ??= setTimeout(() => this.close(), this.timeoutMs);
        let n: number | null;
        try {
          n = await this.#conn.read(this.#chunk);
        } catch (e) {
          throw this.#closed ? new Error(`no reply within ${this.timeoutMs} ms`) : e;
        }
        if (n === null) throw new Error(`connection closed (partial "${this.#buf}")`);
        this.#buf += decoder.decode(this.#chunk.subarray(0, n));
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Reads a connection to EOF, counting bytes only. */
export async function drain(conn: Deno.Conn): Promise<number> {
  const buf = new Uint8Array(262144);
  let total = 0;
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return total;
    total += n;
  }
}
