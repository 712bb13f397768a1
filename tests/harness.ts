/**
 * End-to-end test harness: starts a real master and real slaves (`main.ts` subcommands as
 * separate processes) on free loopback ports in a temp dir, and gives tests a raw FTP
 * control client and a way to run real FTP clients (curl, lftp, python3) with a timeout.
 *
 * Everything here cleans up through `await using`: processes are killed and awaited, log
 * files closed, the temp dir removed (set `DRFTPD_E2E_KEEP=1` to keep it for a post-mortem).
 */

import { crc32 } from "node:zlib";

/** Absolute path of the repository root (the folder holding main.ts). */
export const repoRoot: string = new URL("..", import.meta.url).pathname;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How long a site may take to come up (master answering and every slave online). */
export const STARTUP_TIMEOUT_MS = 30_000;

// ------------------------------------------------------------------------------ small helpers

/** Resolves after `ms` milliseconds: only ever used as the interval of a bounded poll. */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Thrown inside a {@link poll} check to stop polling at once (e.g. a process exited). */
export class PollAbortedError extends Error {
  override name = "PollAbortedError";
}

/**
 * Calls `check` every `intervalMs` until it returns a value other than `undefined`, or throws
 * once `timeoutMs` has passed. `describe` is called for the failure message.
 */
export async function poll<T>(
  check: () => Promise<T | undefined> | T | undefined,
  options: { timeoutMs?: number; intervalMs?: number; describe?: () => string | Promise<string> } =
    {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? STARTUP_TIMEOUT_MS;
  const intervalMs = options.intervalMs ?? 150;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = undefined;
  while (true) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      if (error instanceof PollAbortedError) throw error;
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const what = options.describe ? await options.describe() : "condition";
      const why = lastError === undefined ? "" : `\nlast error: ${errorText(lastError)}`;
      throw new Error(`Timed out after ${timeoutMs} ms waiting for: ${what}${why}`);
    }
    await delay(intervalMs);
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Random bytes of the given length (crypto.getRandomValues fills at most 64 KiB per call). */
export function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += 65536) {
    crypto.getRandomValues(bytes.subarray(offset, Math.min(length, offset + 65536)));
  }
  return bytes;
}

/** Hex SHA-256 of some bytes: compare digests, not megabytes, so a failure message stays short. */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** CRC32 of some bytes as 8 lower-case hex digits (what XCRC answers, case aside). */
export function crc32Hex(bytes: Uint8Array): string {
  return (crc32(bytes) >>> 0).toString(16).padStart(8, "0");
}

/** True when both files exist and hold the same bytes. */
export async function sameFile(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([Deno.readFile(a), Deno.readFile(b)]);
  return x.length === y.length && (await sha256(x)) === (await sha256(y));
}

/** True when `path` exists (any kind of entry). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Every regular file under `root`, as paths relative to it with "/" separators, sorted. */
export async function listTree(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string, prefix: string): Promise<void> {
    for await (const entry of Deno.readDir(dir)) {
      const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
      if (entry.isDirectory) await walk(`${dir}/${entry.name}`, rel);
      else if (entry.isFile) out.push(rel);
    }
  }
  if (await exists(root)) await walk(root, "");
  return out.sort();
}

/** A temp dir removed on dispose (kept when DRFTPD_E2E_KEEP=1). */
export async function tempDir(prefix = "drftpd-e2e-"): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async [Symbol.asyncDispose]() {
      if (Deno.env.get("DRFTPD_E2E_KEEP") === "1") {
        console.error(`keeping ${path}`);
        return;
      }
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

// ------------------------------------------------------------------------------ ports

/** A TCP port that was free on 0.0.0.0 a moment ago (listen on port 0, read it, close). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** An inclusive range of `n` consecutive ports, all free on 0.0.0.0 a moment ago. */
export function freePortRange(n: number): { from: number; to: number } {
  // Stay below the Linux ephemeral range (32768+) so outgoing connections do not take them;
  // pick a random base so test files running in parallel rarely try the same range.
  for (let attempt = 0; attempt < 200; attempt++) {
    const from = 20000 + Math.floor(Math.random() * (32000 - 20000 - n));
    const held: Deno.Listener[] = [];
    try {
      for (let port = from; port < from + n; port++) {
        held.push(Deno.listen({ hostname: "0.0.0.0", port }));
      }
      return { from, to: from + n - 1 };
    } catch {
      // one was taken: try another base
    } finally {
      for (const l of held) l.close();
    }
  }
  throw new Error(`No ${n} consecutive free ports found`);
}

// ------------------------------------------------------------------------------ running clients

/** What a finished client process did. */
export interface RunResult {
  code: number;
  success: boolean;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Options for {@link run}. */
export interface RunOptions {
  cwd?: string;
  /** Killed (SIGKILL) after this long. Default 60 s. */
  timeoutMs?: number;
  stdin?: string | Uint8Array;
  env?: Record<string, string>;
}

/** Runs a client process to completion with a timeout; never throws for a non-zero exit. */
export async function run(
  cmd: string,
  args: string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.env === undefined ? {} : { env: options.env }),
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, options.timeoutMs ?? 60_000);
  try {
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      const data = typeof options.stdin === "string"
        ? encoder.encode(options.stdin)
        : options.stdin;
      await writer.write(data).catch(() => {});
      await writer.close().catch(() => {});
    }
    const out = await child.output();
    return {
      code: out.code,
      success: out.success,
      signal: out.signal,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
      timedOut,
    };
  } finally {
    clearTimeout(timer);
  }
}

/** A one-line summary of a failed run, for assertion messages. */
export function describeRun(cmd: string, r: RunResult): string {
  return `${cmd} exited ${r.code}${r.signal ? ` (${r.signal})` : ""}${
    r.timedOut ? " after timing out" : ""
  }\n--- stdout\n${tail(r.stdout, 3000)}\n--- stderr\n${tail(r.stderr, 6000)}`;
}

function tail(text: string, max: number): string {
  return text.length <= max ? text : `…${text.slice(text.length - max)}`;
}

// ------------------------------------------------------------------------------ raw FTP client

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
 * A tiny raw FTP control connection for asserting exact reply codes. It reads multi-line
 * replies ("123-…" up to "123 …") correctly, and every read has a deadline.
 */
export class FtpControl implements AsyncDisposable {
  #conn: Deno.TcpConn | Deno.TlsConn;
  #buffer = "";
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

  /** Writes one command line without reading a reply. */
  async write(command: string): Promise<void> {
    const data = encoder.encode(`${command}\r\n`);
    let written = 0;
    while (written < data.length) written += await this.#conn.write(data.subarray(written));
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
        bytes = await withTimeout(readAll(data), {
          ms: this.timeoutMs,
          what: "data connection EOF",
        });
      } else {
        let off = 0;
        while (off < upload.length) off += await data.write(upload.subarray(off));
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
    try {
      await withTimeout(this.send("QUIT"), { ms: 2000, what: "QUIT reply" });
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
    const deadline = Date.now() + this.timeoutMs;
    while (true) {
      const nl = this.#buffer.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buffer.slice(0, nl).replace(/\r$/, "");
        this.#buffer = this.#buffer.slice(nl + 1);
        return line;
      }
      if (this.#buffer.length > 65536) throw new Error("Reply line longer than 64 KiB");
      const chunk = new Uint8Array(8192);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`No reply within ${this.timeoutMs} ms`);
      let n: number | null;
      try {
        n = await withTimeout(this.#conn.read(chunk), { ms: remaining, what: "FTP reply" });
      } catch (error) {
        // a timed-out read is still pending: closing the connection ends it
        this.close();
        throw error;
      }
      if (n === null) {
        throw new Error(`Control connection closed (partial: "${this.#buffer}")`);
      }
      this.#buffer += decoder.decode(chunk.subarray(0, n), { stream: true });
    }
  }
}

/** Reads a connection to EOF. */
export async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(65536);
  while (true) {
    const n = await conn.read(buf);
    if (n === null) break;
    parts.push(buf.slice(0, n));
    total += n;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Rejects when `promise` has not settled within `ms`; always clears its timer. */
export async function withTimeout<T>(
  promise: Promise<T>,
  options: { ms: number; what: string },
): Promise<T> {
  const { ms, what } = options;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// ------------------------------------------------------------------------------ the site

/** One slave of a test site. */
export interface SlaveSpec {
  name: string;
  /** Address data sockets bind to and PASV names, e.g. "127.0.0.2". */
  address: string;
  /** Overrides the site secret (to test a refused slave). */
  secret?: string;
  /** Start this slave with the site (default true). */
  start?: boolean;
  /** Wait for this slave to be online before the site is returned (default: same as start). */
  waitOnline?: boolean;
  /** The slave's public_address (what PASV names); default "" (its listen address). */
  publicAddress?: string;
  /** Where the slave dials the master, given the master's link port (e.g. through a proxy). */
  masterAddress?: (linkPort: number) => string;
  /** Extra slave.toml text at the end of the `[slave]` section. */
  extra?: string;
}

/** Options for {@link makeSite}. */
export interface SiteOptions {
  slaves: SlaveSpec[];
  pasvWithoutPret?: "relay" | "reject";
  /** Address the master names in PASV for data it serves itself; default "127.0.0.1". */
  publicAddress?: string;
  logLevel?: "debug" | "info" | "warning" | "error";
  /** Ports per passive range (master and each slave). Default 20. */
  passivePorts?: number;
  /**
   * Extra master.toml text, inserted at the end of the `[ftp]` section: bare keys are `[ftp]`
   * keys (`fxp = "deny"`), and table headers such as `[[ftp.fxp_rules]]` work too.
   */
  masterExtra?: string;
}

/** What a slave reports in SITE SLAVES. */
export type SlaveState = "online" | "offline" | "absent";

interface Proc {
  child: Deno.ChildProcess;
  /** Resolves when the process has exited and its output is flushed to the log file. */
  done: Promise<Deno.CommandStatus>;
  exited: boolean;
}

/** A running master with its slaves. */
export interface Site extends AsyncDisposable {
  host: string;
  ftpPort: number;
  user: string;
  pass: string;
  dir: string;
  masterDataDir: string;
  masterConfig: string;
  slaveNames: string[];
  /** ftp://user:pass@host:port + path ("/a/b.bin"); path must start with "/". */
  url(path: string): string;
  slaveRoot(name: string): string;
  slaveAddress(name: string): string;
  slavePassiveRange(name: string): { from: number; to: number };
  /** Ports the master uses for data it serves itself (listings, relay). */
  masterPassiveRange: { from: number; to: number };
  /** Kills a slave with `signal` (default SIGKILL) and awaits its exit. */
  killSlave(name: string, signal?: Deno.Signal): Promise<Deno.CommandStatus | null>;
  /** Starts a slave (again) and, unless `waitOnline` is false, waits until SITE SLAVES shows it online. */
  startSlave(name: string, options?: { waitOnline?: boolean }): Promise<void>;
  /**
   * SIGTERM to the master, await exit, start again, wait for FTP (and slaves, unless false).
   * Returns how the old master exited (SIGKILL if it ignored the signal for 10 s).
   */
  restartMaster(
    options?: { waitSlaves?: boolean; signal?: Deno.Signal },
  ): Promise<Deno.CommandStatus | null>;
  /** Kills the master and awaits its exit. */
  stopMaster(signal?: Deno.Signal): Promise<Deno.CommandStatus | null>;
  /** Adds (or replaces) a user with `drftpd user add`, the master running or not. */
  addUser(name: string, password: string, options?: { admin?: boolean }): Promise<void>;
  /** Logged-in control connection (TYPE I already sent). */
  control(): Promise<FtpControl>;
  /** SITE SLAVES parsed: every configured slave name mapped to online/offline/absent. */
  slaveStates(): Promise<{ states: Record<string, SlaveState>; reply: FtpReply }>;
  /** Waits (bounded) until every named slave is in `state`. */
  waitSlaves(names: string[], state: "online" | "offline", timeoutMs?: number): Promise<void>;
  /** Every process log of this site, concatenated (tails only when `max` is given). */
  logs(max?: number): Promise<string>;
  /** One process's log ("master", "user-add" or a slave name). */
  log(name: string): Promise<string>;
}

function toml(value: string): string {
  return JSON.stringify(value);
}

/**
 * Starts a site: temp dir, configs with free ports, an admin user, the master and the slaves.
 * Returns when the master answers FTP and every slave that should be is online per SITE SLAVES.
 */
export async function makeSite(options: SiteOptions): Promise<Site> {
  const dir = await Deno.makeTempDir({ prefix: "drftpd-e2e-" });
  const host = "127.0.0.1";
  const user = "admin";
  const pass = `pw-${crypto.randomUUID().slice(0, 8)}`;
  const secret = `secret-${crypto.randomUUID()}`;
  const ftpPort = freePort();
  const linkPort = freePort();
  const nPorts = options.passivePorts ?? 20;
  const masterPasv = freePortRange(nPorts);
  const masterDataDir = `${dir}/master-data`;
  const masterConfig = `${dir}/master.toml`;
  const logLevel = options.logLevel ?? "debug";

  await Deno.writeTextFile(
    masterConfig,
    [
      "[master]",
      `data_dir = ${toml("master-data")}`,
      "",
      "[ftp]",
      `listen = ${toml(`${host}:${ftpPort}`)}`,
      `passive_ports = ${toml(`${masterPasv.from}-${masterPasv.to}`)}`,
      `public_address = ${toml(options.publicAddress ?? host)}`,
      `pasv_without_pret = ${toml(options.pasvWithoutPret ?? "relay")}`,
      ...(options.masterExtra === undefined ? [] : [options.masterExtra]),
      "",
      "[slaves]",
      `listen = ${toml(`${host}:${linkPort}`)}`,
      `secret = ${toml(secret)}`,
      "",
      "[log]",
      `level = ${toml(logLevel)}`,
      "",
    ].join("\n"),
  );

  const slaveInfo = new Map<
    string,
    { spec: SlaveSpec; config: string; root: string; range: { from: number; to: number } }
  >();
  const used = new Set<number>();
  for (let p = masterPasv.from; p <= masterPasv.to; p++) used.add(p);
  for (const spec of options.slaves) {
    if (slaveInfo.has(spec.name)) throw new TypeError(`Duplicate slave name "${spec.name}"`);
    let range = freePortRange(nPorts);
    // keep ranges of one site disjoint (matters when slaves share 127.0.0.1)
    while (overlaps(range, used)) range = freePortRange(nPorts);
    for (let p = range.from; p <= range.to; p++) used.add(p);
    const config = `${dir}/slave-${spec.name}.toml`;
    const root = `${dir}/root-${spec.name}`;
    await Deno.mkdir(root, { recursive: true });
    await Deno.writeTextFile(
      config,
      [
        "[slave]",
        `name = ${toml(spec.name)}`,
        `master = ${toml(spec.masterAddress?.(linkPort) ?? `${host}:${linkPort}`)}`,
        `secret = ${toml(spec.secret ?? secret)}`,
        `root = ${toml(`root-${spec.name}`)}`,
        `listen_address = ${toml(spec.address)}`,
        `public_address = ${toml(spec.publicAddress ?? "")}`,
        `passive_ports = ${toml(`${range.from}-${range.to}`)}`,
        ...(spec.extra === undefined ? [] : [spec.extra]),
        "",
        "[log]",
        `level = ${toml(logLevel)}`,
        "",
      ].join("\n"),
    );
    slaveInfo.set(spec.name, { spec, config, root, range });
  }

  const procs = new Map<string, Proc>();
  const logFile = (name: string) => `${dir}/${name}.log`;

  async function spawn(name: string, args: string[]): Promise<Proc> {
    const file = await Deno.open(logFile(name), { append: true, create: true });
    await file.write(encoder.encode(`\n===== ${new Date().toISOString()} start ${name}\n`));
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts", ...args],
      cwd: repoRoot,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    // both streams into one file: write chunks in arrival order through one queue
    let queue = Promise.resolve();
    const sink = () =>
      new WritableStream<Uint8Array>({
        write(chunk) {
          queue = queue.then(async () => {
            let off = 0;
            while (off < chunk.length) off += await file.write(chunk.subarray(off));
          });
          return queue;
        },
      });
    const pipes = Promise.all([
      child.stdout.pipeTo(sink()).catch(() => {}),
      child.stderr.pipeTo(sink()).catch(() => {}),
    ]);
    const proc: Proc = { child, exited: false, done: Promise.resolve({} as Deno.CommandStatus) };
    proc.done = (async () => {
      const status = await child.status;
      await pipes;
      await queue.catch(() => {});
      const how = status.signal ? `signal ${status.signal}` : `code ${status.code}`;
      await file.write(encoder.encode(`===== ${new Date().toISOString()} exit ${name}: ${how}\n`))
        .catch(() => {});
      file.close();
      proc.exited = true;
      return status;
    })();
    return proc;
  }

  async function readLog(name: string): Promise<string> {
    try {
      return await Deno.readTextFile(logFile(name));
    } catch {
      return "";
    }
  }

  async function logs(max?: number): Promise<string> {
    const names = ["user-add", "master", ...slaveInfo.keys()];
    const parts: string[] = [];
    for (const n of names) {
      const text = await readLog(n);
      if (text === "") continue;
      parts.push(`----- ${n}.log\n${max === undefined ? text : tail(text, max)}`);
    }
    return parts.join("\n");
  }

  async function stop(name: string, signal: Deno.Signal): Promise<Deno.CommandStatus | null> {
    const proc = procs.get(name);
    if (!proc) return null;
    if (!proc.exited) {
      try {
        proc.child.kill(signal);
      } catch {
        // already exited
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const escalated = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          try {
            if (!proc.exited) proc.child.kill("SIGKILL");
          } catch {
            // gone
          }
          resolve();
        }, 10_000);
      });
      await Promise.race([proc.done, escalated]);
      clearTimeout(timer);
    }
    const status = await proc.done;
    procs.delete(name);
    return status;
  }

  async function startMaster(): Promise<void> {
    procs.set("master", await spawn("master", ["master", "--config", masterConfig]));
  }

  async function startSlaveProc(name: string): Promise<void> {
    const info = slaveInfo.get(name);
    if (!info) throw new TypeError(`Unknown slave "${name}"`);
    if (procs.has(name)) throw new Error(`Slave "${name}" is already running`);
    procs.set(name, await spawn(name, ["slave", "--config", info.config]));
  }

  /** Throws (with logs) when the master process has exited. */
  async function assertMasterAlive(): Promise<void> {
    const m = procs.get("master");
    if (!m || m.exited) {
      throw new PollAbortedError(`The master process exited\n${await logs(8000)}`);
    }
  }

  async function control(): Promise<FtpControl> {
    // A site with tls = "required" only takes logins over TLS.
    const caCerts = /tls\s*=\s*"required"/.test(options.masterExtra ?? "")
      ? [await Deno.readTextFile(`${masterDataDir}/tls/cert.pem`)]
      : undefined;
    return await FtpControl.login({ host, port: ftpPort }, {
      user,
      pass,
      ...(caCerts ? { caCerts } : {}),
    });
  }

  async function slaveStates(): Promise<{ states: Record<string, SlaveState>; reply: FtpReply }> {
    await using ftp = await control();
    const reply = await ftp.send("SITE SLAVES");
    if (reply.code !== 200) throw new Error(`SITE SLAVES failed: ${reply.lines.join(" | ")}`);
    const states: Record<string, SlaveState> = {};
    for (const name of slaveInfo.keys()) {
      const esc = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      const online = new RegExp(`(^|[\\s:-])${esc} online\\b`);
      const offline = new RegExp(`(^|[\\s:-])${esc} offline\\b`);
      const line = reply.lines.find((l) => online.test(l) || offline.test(l));
      states[name] = line === undefined ? "absent" : online.test(line) ? "online" : "offline";
    }
    return { states, reply };
  }

  async function waitFtp(timeoutMs: number): Promise<void> {
    await poll(async () => {
      await assertMasterAlive();
      const ftp = await FtpControl.connect({ host, port: ftpPort }, { timeoutMs: 5000 });
      ftp.close();
      if (ftp.greeting.code !== 220) throw new Error(`greeting ${ftp.greeting.lines.join(" | ")}`);
      return true;
    }, {
      timeoutMs,
      describe: async () => `the master to answer FTP on ${host}:${ftpPort}\n${await logs(8000)}`,
    });
  }

  async function waitSlaves(
    names: string[],
    state: "online" | "offline",
    timeoutMs = STARTUP_TIMEOUT_MS,
  ): Promise<void> {
    let last = "";
    await poll(async () => {
      await assertMasterAlive();
      if (state === "online") {
        const dead = names.filter((n) => procs.get(n)?.exited !== false);
        if (dead.length > 0) {
          throw new PollAbortedError(
            `Slave process ${dead.join(", ")} is not running\n${await logs(8000)}`,
          );
        }
      }
      const { states, reply } = await slaveStates();
      last = reply.lines.join("\n");
      // "offline" is also satisfied by a slave the master no longer lists at all
      const ok = names.every((n) =>
        state === "online" ? states[n] === "online" : states[n] !== "online"
      );
      return ok ? true : undefined;
    }, {
      timeoutMs,
      describe: async () =>
        `slaves ${names.join(", ")} to be ${state}; last SITE SLAVES:\n${last}\n${await logs(
          8000,
        )}`,
    });
  }

  const site: Site = {
    async addUser(name, password, options = {}) {
      const add = await run(Deno.execPath(), [
        "run",
        "-A",
        "main.ts",
        "user",
        "add",
        name,
        "--password",
        password,
        ...(options.admin ? ["--admin"] : []),
        "--config",
        masterConfig,
      ], { cwd: repoRoot, timeoutMs: 30_000 });
      await Deno.writeTextFile(logFile("user-add"), `${add.stdout}${add.stderr}`, { append: true });
      if (!add.success) throw new Error(`user add failed: ${describeRun("user add", add)}`);
    },
    host,
    ftpPort,
    user,
    pass,
    dir,
    masterDataDir,
    masterConfig,
    slaveNames: [...slaveInfo.keys()],
    masterPassiveRange: masterPasv,
    url: (path: string) => {
      if (!path.startsWith("/")) throw new TypeError(`Path must start with "/": "${path}"`);
      return `ftp://${user}:${pass}@${host}:${ftpPort}${path}`;
    },
    slaveRoot: (name: string) => {
      const info = slaveInfo.get(name);
      if (!info) throw new TypeError(`Unknown slave "${name}"`);
      return info.root;
    },
    slaveAddress: (name: string) => {
      const info = slaveInfo.get(name);
      if (!info) throw new TypeError(`Unknown slave "${name}"`);
      return info.spec.address;
    },
    slavePassiveRange: (name: string) => {
      const info = slaveInfo.get(name);
      if (!info) throw new TypeError(`Unknown slave "${name}"`);
      return info.range;
    },
    killSlave: (name: string, signal: Deno.Signal = "SIGKILL") => stop(name, signal),
    startSlave: async (name: string, opts = {}) => {
      await startSlaveProc(name);
      if (opts.waitOnline !== false) await waitSlaves([name], "online");
    },
    restartMaster: async (opts = {}) => {
      const status = await stop("master", opts.signal ?? "SIGTERM");
      await startMaster();
      await waitFtp(STARTUP_TIMEOUT_MS);
      if (opts.waitSlaves !== false) {
        const running = [...slaveInfo.keys()].filter((n) =>
          procs.has(n) && slaveInfo.get(n)!.spec.secret === undefined
        );
        await waitSlaves(running, "online");
      }
      return status;
    },
    stopMaster: (signal: Deno.Signal = "SIGTERM") => stop("master", signal),
    control,
    slaveStates,
    waitSlaves,
    logs,
    log: readLog,
    async [Symbol.asyncDispose]() {
      const names = [...procs.keys()];
      // slaves first so they do not log reconnect noise, then the master
      await Promise.all(names.filter((n) => n !== "master").map((n) => stop(n, "SIGTERM")));
      await stop("master", "SIGTERM");
      if (Deno.env.get("DRFTPD_E2E_KEEP") === "1") {
        console.error(`keeping ${dir}`);
        return;
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };

  try {
    // the admin user must exist before the master opens the filelist
    await site.addUser(user, pass, { admin: true });

    await startMaster();
    for (const [name, info] of slaveInfo) {
      if (info.spec.start !== false) await startSlaveProc(name);
    }
    await waitFtp(STARTUP_TIMEOUT_MS);
    const mustBeOnline = [...slaveInfo.values()]
      .filter((i) => i.spec.waitOnline ?? (i.spec.start !== false))
      .map((i) => i.spec.name);
    await waitSlaves(mustBeOnline, "online");
  } catch (error) {
    await site[Symbol.asyncDispose]();
    throw error;
  }
  return site;
}

function overlaps(range: { from: number; to: number }, used: Set<number>): boolean {
  for (let p = range.from; p <= range.to; p++) if (used.has(p)) return true;
  return false;
}

// ------------------------------------------------------------------------------ curl helpers

/** curl flags every e2e call uses: quiet with errors, bounded time, no proxy from the environment. */
export const CURL_BASE = ["-sS", "--max-time", "60", "--noproxy", "*"];

/** curl flags for passive mode through PRET that honour the slave address in 227. */
export const CURL_PRET = [...CURL_BASE, "--ftp-pret", "--no-ftp-skip-pasv-ip"];

/** Runs curl with the given args (a 90 s guard on top of --max-time). */
export function curl(args: string[], options: RunOptions = {}): Promise<RunResult> {
  return run("curl", args, { timeoutMs: 90_000, ...options });
}

/** Every 227 endpoint in a curl -v trace ("< 227 Entering Passive Mode (…)"). */
export function pasvHostsFromCurlTrace(stderr: string): { host: string; port: number }[] {
  return stderr.split("\n")
    .filter((l) => /^< 227[ -]/.test(l))
    .map((l) => parse227(l.slice(2)));
}

/** Which slave roots hold `relPath` (relative to a root, no leading "/"). */
export async function slavesHolding(site: Site, relPath: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of site.slaveNames) {
    if (await exists(`${site.slaveRoot(name)}/${relPath}`)) out.push(name);
  }
  return out;
}

/** Paths of entries under `root` whose base name is `name` (for "not stored on the master"). */
export async function findByName(root: string, name: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string): Promise<void> {
    for await (const entry of Deno.readDir(dir)) {
      const p = `${dir}/${entry.name}`;
      if (entry.name === name) out.push(p);
      if (entry.isDirectory) await walk(p);
    }
  }
  if (await exists(root)) await walk(root);
  return out;
}
