/**
 * drftpd entry point: subcommand dispatch only. See `drftpd --help`.
 *
 * Exit codes: 0 done, 1 runtime failure, 2 bad command line or config.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import {
  type AccountCommand,
  type Command,
  LOCAL_USER,
  localBanner,
  type LocalCommand,
  type LocalSetup,
  localSetup,
  parseCommand,
  randomToken,
  readLoginFile,
  shutdownSignal,
  UsageError,
  writeLoginFile,
} from "./shared/cli.ts";
import { dirname, join, resolve } from "node:path";
import {
  ConfigError,
  DEFAULT_SECRET,
  explainConfig,
  loadMasterConfig,
  loadSlaveConfig,
  type MasterConfig,
} from "./shared/config.ts";
import { setupLogging } from "./shared/log.ts";
import { VERSION } from "./shared/version.ts";
import { loadOpenSsl, type OpenSsl } from "./shared/tls/mod.ts";
import { type FdLimit, raiseFdLimit } from "./shared/rlimit.ts";
import type { UserStore } from "./master/auth/users.ts";
import type { StartedMaster } from "./master/mod.ts";

// The roles are imported on demand so that `--help`, `slave` and `user` do not load (or need)
// the master's code, and vice versa; `deno compile` still bundles them (static specifiers).
const loadMaster = () => import("./master/mod.ts");
const loadSlave = () => import("./slave/mod.ts");
const loadUsers = () => import("./master/auth/users.ts");
const loadAccounts = () => import("./master/auth/accounts_cli.ts");

/** Runs the command line `args` and returns the process exit code. */
export async function main(args: readonly string[]): Promise<number> {
  try {
    return await run(parseCommand(args));
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`${e.command}: ${e.message}\nRun "${e.command} --help" for usage.`);
      return 2;
    }
    if (e instanceof ConfigError) {
      console.error(`drftpd: ${e.message}`);
      return 2;
    }
    console.error(`drftpd: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    return 1;
  }
}

async function run(cmd: Command): Promise<number> {
  switch (cmd.kind) {
    case "help":
      console.log(cmd.text.trimEnd());
      return 0;
    case "version":
      console.log(`drftpd ${VERSION}`);
      return 0;
    case "master": {
      const config = await loadMasterConfig(cmd.config);
      if (cmd.logLevel) config.log.level = cmd.logLevel;
      // runMaster warns about the default secret itself
      await setupLogging(config.log.level, { format: config.log.format });
      using shutdown = shutdownSignal();
      const { runMaster } = await loadMaster();
      await using kv = await openMasterKv(config);
      await runMaster(config, kv.kv, shutdown.signal, tlsOptions());
      return 0;
    }
    case "slave": {
      const config = await loadSlaveConfig(cmd.config);
      if (cmd.logLevel) config.log.level = cmd.logLevel;
      await setupLogging(config.log.level, { format: config.log.format });
      warnDefaultSecret(config.slave.secret);
      using shutdown = shutdownSignal();
      const { runSlave, chooseDataEngine } = await loadSlave();
      const dataEngine = chooseDataEngine(config); // loads libc: before tlsOptions() drops ffi
      await runSlave(config, shutdown.signal, { ...tlsOptions(), dataEngine });
      return 0;
    }
    case "local":
      return await runLocal(cmd);
    case "init":
      return await runInit(cmd.dir, cmd.admin);
    case "config-check": {
      const file = resolve(cmd.config);
      const text = await Deno.readTextFile(file).catch((e) => {
        throw new ConfigError(file, null, undefined, `cannot read config file: ${e.message}`);
      });
      const { kind, settings } = explainConfig(text, file, dirname(file));
      console.log(`${file}: a valid ${kind} configuration\n`);
      const width = Math.max(...settings.map((s) => s.key.length + s.value.length + 3));
      for (const s of settings) {
        console.log(`${`${s.key} = ${s.value}`.padEnd(width)}  # ${s.source}`);
      }
      return 0;
    }
    default:
      return await runAccounts(cmd);
  }
}

/** `drftpd user ...` / `drftpd group ...`: prints the result; a bad name or value exits 2. */
async function runAccounts(cmd: AccountCommand): Promise<number> {
  const config = await loadMasterConfig(cmd.config);
  await setupLogging("warning");
  const [{ UserStore }, { runAccountCommand }] = await Promise.all([loadUsers(), loadAccounts()]);
  await using kv = await openMasterKv(config);
  const command = `drftpd ${cmd.kind.replace("-", " ")}`;
  try {
    const lines = await runAccountCommand(cmd, new UserStore(kv.kv), kv.kv);
    for (const line of lines) console.log(line);
    if (lines.length === 0) console.error(`None in ${kv.path}`);
    return 0;
  } catch (e) {
    // Invalid name, group, field or password: a bad command line.
    if (e instanceof TypeError) throw new UsageError(command, e.message);
    console.error(`${command}: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

async function runLocal(cmd: LocalCommand): Promise<number> {
  ensurePortFree(cmd.port);
  const setup = localSetup(cmd, {
    cwd: Deno.cwd(),
    linkPort: freePort(),
    secret: randomToken(32),
  });
  await setupLogging(setup.master.log.level);
  const log = getLogger(["drftpd", "local"]);
  const [{ runMaster }, { runSlave, chooseDataEngine }, { UserStore }] = await Promise.all([
    loadMaster(),
    loadSlave(),
    loadUsers(),
  ]);
  const dataEngines = setup.slaves.map((s) => chooseDataEngine(s)); // before ffi is dropped
  const engine = tlsOptions();
  using shutdown = shutdownSignal();
  await using kv = await openMasterKv(setup.master);
  const password = await ensureLocalUser(new UserStore(kv.kv), setup);
  for (const s of setup.slaves) await Deno.mkdir(s.slave.root, { recursive: true });

  const stopAll = new AbortController();
  const slavesStop = new AbortController();
  const stop = () => stopAll.abort();
  shutdown.signal.addEventListener("abort", stop, { once: true });
  let started: StartedMaster | null = null;
  const masterStarted = Promise.withResolvers<void>();
  const roles = [
    {
      name: "master",
      run: () =>
        runMaster(setup.master, kv.kv, stopAll.signal, {
          ...engine,
          started: (m) => {
            started = m;
            masterStarted.resolve();
          },
        }).finally(() => slavesStop.abort()),
    },
    ...setup.slaves.map((s, i) => ({
      name: s.slave.name,
      // The slaves stop after the master, which lets running transfers finish first.
      run: () => runSlave(s, slavesStop.signal, { ...engine, dataEngine: dataEngines[i]! }),
    })),
  ];
  let failed = false;
  const running = roles.map(async ({ name, run }) => {
    try {
      await run();
      if (!stopAll.signal.aborted) log.warn("{name} stopped by itself", { name });
    } catch (error) {
      failed = true;
      log.error("{name} failed: {error}", { name, error });
    } finally {
      // One role ending ends the whole local setup.
      stop();
    }
  });
  const allDone = Promise.all(running);
  // The ready line only once the FTP port listens and every slave is online, so a first
  // download right after it finds its slave.
  const ready = (async () => {
    await Promise.race([masterStarted.promise, allDone]);
    const m = started as StartedMaster | null;
    if (m === null) return false;
    await m.slaves.whenOnline(setup.slaves.map((s) => s.slave.name), stopAll.signal);
    await writeCaFile(setup, m.cert);
    return true;
  })().catch((e) => {
    if (!stopAll.signal.aborted) throw e;
    return false;
  });
  if (await ready) console.log(localBanner(setup, LOCAL_USER, password));
  await allDone;
  shutdown.signal.removeEventListener("abort", stop);
  return failed ? 1 : 0;
}

/** Writes DIR/ca.pem: the master's certificate and each slave's self-signed one. */
async function writeCaFile(setup: LocalSetup, masterCert: string | null): Promise<void> {
  const pems = masterCert ? [masterCert.trim()] : [];
  for (const s of setup.slaves) {
    const file = s.slave.tls_cert || `${s.slave.root.replace(/\/+$/, "")}.tls/cert.pem`;
    const pem = await Deno.readTextFile(file).catch(() => null);
    if (pem) pems.push(pem.trim());
  }
  await Deno.writeTextFile(setup.caFile, pems.join("\n") + "\n");
}

/**
 * `drftpd init`: writes the two commented config files (never over existing ones), creates the
 * admin user in the new master's filelist and prints its password once.
 */
async function runInit(dir: string, admin: string): Promise<number> {
  const { masterToml, slaveToml } = await import("./shared/site_init.ts");
  await setupLogging("warning");
  const folder = resolve(dir);
  await Deno.mkdir(folder, { recursive: true });
  const values = { secret: randomToken(32) };
  const masterFile = join(folder, "master.toml");
  const slaveFile = join(folder, "slave.toml");
  for (const f of [masterFile, slaveFile]) {
    if (await Deno.lstat(f).then(() => true, () => false)) {
      throw new UsageError(
        "drftpd init",
        `"${f}" exists already; remove it or choose another --dir`,
      );
    }
  }
  await Deno.writeTextFile(masterFile, masterToml(values), { createNew: true, mode: 0o600 });
  await Deno.writeTextFile(slaveFile, slaveToml(values), { createNew: true, mode: 0o600 });
  const config = await loadMasterConfig(masterFile);
  const { UserStore } = await loadUsers();
  await using kv = await openMasterKv(config);
  const password = randomToken(20);
  await new UserStore(kv.kv).add(admin, password, { admin: true }).catch((e) => {
    throw e instanceof TypeError ? new UsageError("drftpd init", e.message) : e;
  });
  console.log([
    `Wrote ${masterFile} and ${slaveFile} (a new random link secret in both; mode 0600).`,
    `Created the admin user "${admin}" in ${kv.path}.`,
    `Its password, shown only this once: ${password}`,
    "",
    "Start the site with:",
    `  drftpd master --config ${masterFile}`,
    `  drftpd slave --config ${slaveFile}`,
    `Check a file with: drftpd config check --config ${masterFile}`,
  ].join("\n"));
  return 0;
}

/**
 * Reuses the password in login.txt while the user exists; otherwise (first start, or the
 * filelist or login.txt was deleted) sets up the admin user and writes login.txt.
 */
async function ensureLocalUser(users: UserStore, setup: LocalSetup): Promise<string> {
  const saved = await readLoginFile(setup.loginFile);
  if (saved !== null && (await users.get(LOCAL_USER)) !== null) return saved;
  const password = saved ?? randomToken(20);
  if ((await users.get(LOCAL_USER)) === null) {
    await users.add(LOCAL_USER, password, { admin: true });
  } else await users.setPassword(LOCAL_USER, password); // login.txt was deleted: a new one
  const { host, port } = setup.master.ftp.listen;
  await writeLoginFile(
    setup.loginFile,
    LOCAL_USER,
    password,
    `ftp://${LOCAL_USER}@${host}:${port}/`,
  );
  return password;
}

/**
 * Creates data_dir (owner-only) and opens `${data_dir}/filelist.kv`; disposing closes it.
 * Security: the KV file holds password hashes, so a new one is created owner-only (0600) before
 * SQLite opens it (its -wal and -shm files take the same mode).
 */
async function openMasterKv(
  config: MasterConfig,
): Promise<{ kv: Deno.Kv; path: string } & AsyncDisposable> {
  const dir = config.master.data_dir;
  const existed = await Deno.stat(dir).then(() => true, () => false);
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  if (!existed) await Deno.chmod(dir, 0o700); // an operator's existing folder stays as it is
  const path = `${dir}/filelist.kv`;
  try {
    (await Deno.open(path, { createNew: true, write: true, mode: 0o600 })).close();
    await Deno.chmod(path, 0o600);
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
  }
  const kv = await Deno.openKv(path);
  return {
    kv,
    path,
    [Symbol.asyncDispose]() {
      kv.close();
      return Promise.resolve();
    },
  };
}

/** Fails early, before anything starts, when the local FTP port is taken. */
function ensurePortFree(port: number): void {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
  } catch (e) {
    if (!(e instanceof Deno.errors.AddrInUse)) throw e;
    throw new Error(
      `FTP port 127.0.0.1:${port} is already in use (is drftpd already running?): ` +
        `choose another with --port`,
    );
  }
}

/** A port that was free a moment ago on 127.0.0.1 (the OS picks it). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

function warnDefaultSecret(secret: string): void {
  if (secret === DEFAULT_SECRET) {
    getLogger(["drftpd", "slave"]).warn(
      `The link secret is the default "${DEFAULT_SECRET}": set [slave] secret in slave.toml`,
    );
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

/**
 * The OpenSSL TLS engine when libssl is present (it lets slaves resume TLS sessions the client
 * negotiated with the master); otherwise node:tls is used and resumption works on the master only.
 * `DRFTPD_TLS_ENGINE=node` chooses node:tls even when libssl is there (tests run both engines).
 */
function tlsOptions(): { tlsEngine?: OpenSsl; fdLimit?: FdLimit } {
  const options: { tlsEngine?: OpenSsl; fdLimit?: FdLimit } = {};
  let choice = "";
  try {
    choice = Deno.env.get("DRFTPD_TLS_ENGINE") ?? "";
  } catch {
    // no --allow-env: the default
  }
  if (choice !== "" && choice !== "node" && choice !== "openssl") {
    throw new TypeError(`Invalid DRFTPD_TLS_ENGINE "${choice}": expected "node" or "openssl"`);
  }
  try {
    if (choice === "node") throw new Error("DRFTPD_TLS_ENGINE=node");
    options.tlsEngine = loadOpenSsl();
  } catch (e) {
    if (choice === "openssl") throw e;
    getLogger(["drftpd"]).info("OpenSSL engine unavailable ({error}); using node:tls", {
      error: e instanceof Error ? e.message : String(e),
    });
  }
  // Every socket is a file descriptor: take all the hard limit allows while FFI is allowed.
  try {
    options.fdLimit = raiseFdLimit();
  } catch (e) {
    getLogger(["drftpd"]).warn("Cannot read or raise the open-file limit: {error}", {
      error: e instanceof Error ? e.message : String(e),
    });
  }
  dropPrivileges();
  return options;
}

/**
 * Least privilege: once the roles are loaded, neither master nor slave loads native code or
 * runs programs, so those permissions are given up for the rest of the process.
 */
function dropPrivileges(): void {
  for (const name of ["ffi", "run"] as const) {
    try {
      Deno.permissions.revokeSync({ name });
    } catch {
      // not granted, or not revocable here
    }
  }
}
