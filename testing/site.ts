/**
 * A test site: a real master and real slaves (`main.ts` subcommands as separate processes) on
 * free loopback ports in a temp dir. Everything cleans up through `await using`: processes are
 * killed and awaited, log files closed, the temp dir removed (set `DRFTPD_E2E_KEEP=1` to keep it
 * for a post-mortem).
 *
 * @module
 */

import { exists, randomBytes } from "./files.ts";
import { FtpControl, type FtpReply } from "./ftp_client.ts";
import { freePort, freePortRange } from "./ports.ts";
import { curl, CURL_PRET, describeRun, run, type RunResult, tail } from "./process.ts";
import { poll, PollAbortedError, STARTUP_TIMEOUT_MS } from "./wait.ts";

/** Absolute path of the repository root (the folder holding main.ts). */
export const repoRoot: string = new URL("..", import.meta.url).pathname;

const encoder = new TextEncoder();

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
  /** `[ftp] pasv_without_pret`; default: not set (the master's default, "slave"). */
  pasvWithoutPret?: "slave" | "relay" | "reject";
  /** Address the master names in PASV for data it serves itself; default "127.0.0.1". */
  publicAddress?: string;
  logLevel?: "debug" | "info" | "warning" | "error";
  /** Ports per passive range (master and each slave). Default 20. */
  passivePorts?: number;
  /**
   * Extra master.toml text, inserted at the end of the `[ftp]` section: bare keys are `[ftp]`
   * keys (`fxp = "deny"`), and table headers such as `[[ftp.fxp_rules]]` work too. Unless it sets
   * `max_connections_per_address`, a test site allows 100000 (every client is 127.0.0.1).
   */
  masterExtra?: string;
  /** Environment variables for the master and slave processes (e.g. `DRFTPD_TLS_ENGINE`). */
  env?: Record<string, string>;
  /** Extra master.toml text at the end of the `[slaves]` section (`handshake_timeout = 2`). */
  slavesExtra?: string;
  /** A command the master runs under, e.g. `["prlimit", "--nofile=256", "--"]`. */
  masterWrapper?: string[];
  /** `[http] listen` of the master (status page, metrics); default "" (off). */
  http?: string;
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
  /**
   * Sends `signal` to a running slave without waiting for anything (SIGSTOP/SIGCONT). Disposing
   * the site continues a stopped slave before stopping it.
   */
  signalSlave(name: string, signal: Deno.Signal): void;
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
  /** Sends `signal` to the running master (e.g. SIGHUP) without waiting for anything. */
  signalMaster(signal: Deno.Signal): void;
  /** Adds a user with `drftpd user add`, the master running or not (an existing name fails). */
  addUser(
    name: string,
    password: string,
    options?: { admin?: boolean; groups?: string[] },
  ): Promise<void>;
  /** Runs `drftpd <args> --config <master.toml>` (e.g. `["user", "del", "bob"]`) to its end. */
  drftpd(args: string[]): Promise<RunResult>;
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
      ...(options.pasvWithoutPret === undefined
        ? []
        : [`pasv_without_pret = ${toml(options.pasvWithoutPret)}`]),
      // every test client comes from 127.0.0.1: the per-address default (10) only where asked
      ...(/max_connections_per_address/.test(options.masterExtra ?? "")
        ? []
        : ["max_connections_per_address = 100000"]),
      ...(options.masterExtra === undefined ? [] : [options.masterExtra]),
      "",
      "[slaves]",
      `listen = ${toml(`${host}:${linkPort}`)}`,
      `secret = ${toml(secret)}`,
      ...(options.slavesExtra === undefined ? [] : [options.slavesExtra]),
      "",
      "[http]",
      `listen = ${toml(options.http ?? "")}`,
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

  async function spawn(name: string, args: string[], wrapper: string[] = []): Promise<Proc> {
    const file = await Deno.open(logFile(name), { append: true, create: true });
    await file.write(encoder.encode(`\n===== ${new Date().toISOString()} start ${name}\n`));
    const argv = [...wrapper, Deno.execPath(), "run", "-A", "main.ts", ...args];
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      cwd: repoRoot,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...options.env },
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
        if (signal !== "SIGKILL") proc.child.kill("SIGCONT"); // a stopped process takes no SIGTERM
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
    procs.set(
      "master",
      await spawn("master", ["master", "--config", masterConfig], options.masterWrapper),
    );
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

  const drftpd = async (args: string[]): Promise<RunResult> => {
    const r = await run(Deno.execPath(), [
      "run",
      "-A",
      "main.ts",
      ...args,
      "--config",
      masterConfig,
    ], { cwd: repoRoot, timeoutMs: 30_000 });
    await Deno.writeTextFile(
      logFile("user-add"),
      `$ drftpd ${args[0]} ${args[1]}\n${r.stdout}${r.stderr}`,
      {
        append: true,
      },
    );
    return r;
  };

  const site: Site = {
    async addUser(name, password, options = {}) {
      const add = await drftpd([
        "user",
        "add",
        name,
        "--password",
        password,
        ...(options.admin ? ["--admin"] : []),
        ...(options.groups ?? []).flatMap((g) => ["--group", g]),
      ]);
      if (!add.success) throw new Error(`user add failed: ${describeRun("user add", add)}`);
    },
    drftpd,
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
    signalSlave: (name: string, signal: Deno.Signal) => {
      const proc = procs.get(name);
      if (!proc || proc.exited) throw new Error(`Slave "${name}" is not running`);
      proc.child.kill(signal);
    },
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
    signalMaster(signal) {
      const m = procs.get("master");
      if (!m || m.exited) throw new Error("The master is not running");
      m.child.kill(signal);
    },
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

/**
 * Uploads `size` random bytes to `path` with curl (`flags`, default passive through PRET),
 * creating missing folders; the source is written into folder `dir` and its name returned.
 * Throws with curl's output and the site's logs when the upload fails.
 */
export async function curlUpload(
  site: Site,
  path: string,
  options: { dir: string; size: number; flags?: string[] },
): Promise<string> {
  const src = `${options.dir}/${path.replaceAll("/", "_")}`;
  await Deno.writeFile(src, randomBytes(options.size));
  const up = await curl([
    ...(options.flags ?? CURL_PRET),
    "--ftp-create-dirs",
    "-T",
    src,
    site.url(path),
  ]);
  if (!up.success) throw new Error(describeRun(`upload ${path}`, up) + (await site.logs(4000)));
  return src;
}

/** Slaves named `names` on 127.0.0.2, 127.0.0.3, … (one loopback address each). */
export function loopbackSlaves(...names: string[]): SlaveSpec[] {
  return names.map((name, i) => ({ name, address: `127.0.0.${i + 2}` }));
}

/** A `[[replication]]` rule keeping `copies` copies of everything under /archive (masterExtra). */
export function archiveRule(copies: number): string {
  return `\n[[replication]]\npath = "/archive/**"\ncopies = ${copies}\n`;
}

/** Which slave roots hold `relPath` (relative to a root, no leading "/"). */
export async function slavesHolding(site: Site, relPath: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of site.slaveNames) {
    if (await exists(`${site.slaveRoot(name)}/${relPath}`)) out.push(name);
  }
  return out;
}
