/**
 * Command-line parsing and the small helpers `main.ts` needs: argument parsing into a
 * {@link Command}, help texts, the `local` setup (configs, secret, login file) and a shutdown
 * signal wired to SIGINT/SIGTERM.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import {
  formatHostPort,
  LOG_LEVELS,
  type LogLevelName,
  type MasterConfig,
  type SlaveConfig,
  validateMasterConfig,
  validateSlaveConfig,
} from "./config.ts";

/** What the command line asks for. */
export type Command =
  | { kind: "help"; text: string }
  | { kind: "version" }
  | { kind: "master"; config: string | null; logLevel: LogLevelName | null }
  | { kind: "slave"; config: string | null; logLevel: LogLevelName | null }
  | LocalCommand
  | AccountCommand
  | { kind: "init"; dir: string; admin: string }
  | { kind: "config-check"; config: string };

/** `drftpd user ...` and `drftpd group ...`: accounts in the master's KV store. */
export type AccountCommand =
  | {
    kind: "user-add";
    config: string | null;
    name: string;
    password: string;
    groups: string[];
    admin: boolean;
  }
  | { kind: "user-list"; config: string | null }
  | { kind: "user-del"; config: string | null; name: string }
  | { kind: "user-passwd"; config: string | null; name: string; password: string }
  | { kind: "user-show"; config: string | null; name: string }
  | { kind: "user-unlock"; config: string | null; name: string }
  | { kind: "user-change"; config: string | null; name: string; changes: [string, string][] }
  | { kind: "group-add"; config: string | null; name: string; description: string }
  | { kind: "group-del"; config: string | null; name: string }
  | { kind: "group-list"; config: string | null }
  | { kind: "group-show"; config: string | null; name: string };

/** `drftpd local`: a master and `slaves` slaves in one process, state under `dir`. */
export interface LocalCommand {
  kind: "local";
  slaves: number;
  /** As given (relative to the cwd) */
  dir: string;
  port: number;
  /** Port for implicit FTPS on 127.0.0.1, or null for none. */
  tlsPort: number | null;
  /** Port of the status page and metrics on 127.0.0.1 (0 = off). */
  httpPort: number;
  logLevel: LogLevelName | null;
}

/** A bad command line; `command` is the (sub)command it concerns, as in "drftpd master". */
export class UsageError extends Error {
  /** The command whose usage was wrong, for the "see --help" hint. */
  readonly command: string;

  /** Creates the error. */
  constructor(command: string, message: string) {
    super(message);
    this.name = "UsageError";
    this.command = command;
  }
}

/** Most slaves `drftpd local` starts (each takes 100 passive ports from 50100 up). */
export const MAX_LOCAL_SLAVES = 100;

/** The user `drftpd local` creates on first start. */
export const LOCAL_USER = "drftpd";

const LEVELS = LOG_LEVELS.join("|");

/** Help text for each command, keyed by how it is typed. */
export const HELP: Readonly<Record<string, string>> = {
  "drftpd": `drftpd: a distributed FTP server (one master, many slaves)

Usage:
  drftpd master [--config FILE]   run the master (FTP server, filelist)
  drftpd slave [--config FILE]    run a slave (stores files, serves data connections)
  drftpd local [--slaves N]       run a master and N slaves in one process for trying out
  drftpd user add|del|passwd|show|list|change ...   manage users (drftpd user --help)
  drftpd group add|del|list|show ...                manage groups (drftpd group --help)
  drftpd init [--dir DIR]         write a commented master.toml and slave.toml, create an admin
  drftpd config check --config FILE
                                  validate a config file and show every value and its source

Options:
  -h, --help      show help (also after a command: drftpd master --help)
  -V, --version   print the version
`,
  "drftpd master": `Usage: drftpd master [--config FILE] [--log-level LEVEL]

Runs the master: the FTP control server, the slave link server and the filelist
(Deno KV at <master.data_dir>/filelist.kv). On SIGINT/SIGTERM it stops accepting, lets
running transfers finish (up to [ftp] stop_grace seconds), then exits 0; a second signal
exits at once.

Options:
  -c, --config FILE      master.toml (default: built-in defaults, paths relative to the cwd)
      --log-level LEVEL  ${LEVELS}; overrides [log] level
  -h, --help             show this help
  -V, --version          print the version
`,
  "drftpd slave": `Usage: drftpd slave [--config FILE] [--log-level LEVEL]

Runs a slave: stores files under slave.root and serves data connections the master
orders. On SIGINT/SIGTERM it refuses new transfers, lets running ones finish (up to
[slave] stop_grace seconds), tells the master it is leaving and exits 0.

Options:
  -c, --config FILE      slave.toml (default: built-in defaults, paths relative to the cwd)
      --log-level LEVEL  ${LEVELS}; overrides [log] level
  -h, --help             show this help
  -V, --version          print the version
`,
  "drftpd local":
    `Usage: drftpd local [--slaves N] [--dir DIR] [--port PORT] [--tls-port PORT] [--http-port PORT]
                    [--log-level LEVEL]

Runs a master and N slaves in one process, everything on 127.0.0.1. State lives in
DIR/master (filelist) and DIR/slave1..N (files). On first start a user "${LOCAL_USER}" (admin)
is created; its password is kept in DIR/login.txt. The ready line is printed once every
slave is online. DIR/ca.pem holds the site's self-signed certificates, for clients that
verify TLS (lftp: set ssl:ca-file DIR/ca.pem; curl: --cacert DIR/ca.pem).

Options:
  -n, --slaves N         number of slaves, 1-${MAX_LOCAL_SLAVES} (default 2)
  -d, --dir DIR          state folder (default ./data)
  -p, --port PORT        FTP port on 127.0.0.1 (default 2121)
      --tls-port PORT    also serve implicit FTPS (TLS from the first byte) on this port
      --http-port PORT   status page and /metrics on 127.0.0.1 (default 9121, 0 = off)
      --log-level LEVEL  ${LEVELS} (default info)
  -h, --help             show this help
  -V, --version          print the version
`,
  "drftpd init": `Usage: drftpd init [--dir DIR] [--admin NAME]

Writes DIR/master.toml and DIR/slave.toml (commented, a new random link secret in both, passive
ports 50000-50099 for the master and 50100-50199 for the slave), creates the admin user in the
master's filelist (DIR/master/filelist.kv) and prints its password once. Existing files are
never overwritten. Then: drftpd master --config DIR/master.toml and
drftpd slave --config DIR/slave.toml.

Options:
  -d, --dir DIR       folder for the files (default: the current folder)
      --admin NAME    name of the admin user (default admin)
  -h, --help          show this help
  -V, --version       print the version
`,
  "drftpd config": `Usage: drftpd config check --config FILE

Validates a master.toml or slave.toml (a file with a [slave] section is a slave's) and prints
every setting with its effective value and whether it comes from the file or the default.
Exits 2 naming the file, key and value when something is wrong.
`,
  "drftpd config check": `Usage: drftpd config check --config FILE

Validates a master.toml or slave.toml (a file with a [slave] section is a slave's) and prints
every setting with its effective value and whether it comes from the file or the default.
Exits 2 naming the file, key and value when something is wrong.

Options:
  -c, --config FILE   the file to check (required)
  -h, --help          show this help
  -V, --version       print the version
`,
  "drftpd user": `Usage:
  drftpd user add NAME --password PW [--group G]... [--admin] [--config FILE]
  drftpd user del NAME [--config FILE]
  drftpd user passwd NAME --password PW [--config FILE]
  drftpd user show NAME [--config FILE]
  drftpd user list [--config FILE]
  drftpd user change NAME FIELD VALUE [FIELD VALUE]... [--config FILE]
  drftpd user unlock NAME [--config FILE]

unlock lifts the lock that failed logins put on an account. Manages users in the master's KV store (works whether the master runs or not; a change
takes effect at the user's next login). Fields for change: ratio, credits, max_logins,
max_logins_per_address, max_uploads, max_downloads, idle_timeout, admin, disabled, expires,
group_admin, group_slots, primary_group, groups, masks (see README).
`,
  "drftpd group": `Usage:
  drftpd group add NAME [--description TEXT] [--config FILE]
  drftpd group del NAME [--config FILE]
  drftpd group list [--config FILE]
  drftpd group show NAME [--config FILE]

Manages groups in the master's KV store (works whether the master runs or not). A group
with members cannot be deleted.
`,
  "drftpd user add":
    `Usage: drftpd user add NAME --password PW [--group G]... [--admin] [--config FILE]

Adds a user to the master's KV store (<master.data_dir>/filelist.kv).

Options:
  -p, --password PW   the password (required)
  -g, --group G       a group to add the user to; repeat for several
      --admin         make the user an administrator
  -c, --config FILE   master.toml (default: built-in defaults, ./data/master)
  -h, --help          show this help
  -V, --version       print the version
`,
  "drftpd user list": `Usage: drftpd user list [--config FILE]

Lists the users in the master's KV store.

Options:
  -c, --config FILE   master.toml (default: built-in defaults, ./data/master)
  -h, --help          show this help
  -V, --version       print the version
`,
};

/** Parses `Deno.args` into a {@link Command}. Throws {@link UsageError} naming the bad flag or value. */
export function parseCommand(args: readonly string[]): Command {
  const [first, ...rest] = args;
  switch (first) {
    case undefined:
      throw new UsageError(
        "drftpd",
        "a command is required (master, slave, local, user, group, init, config)",
      );
    case "master":
    case "slave":
      return parseServer(first, rest);
    case "local":
      return parseLocal(rest);
    case "user":
      return parseUser(rest);
    case "group":
      return parseGroup(rest);
    case "init":
      return parseInit(rest);
    case "config":
      return parseConfig(rest);
    case "help":
      return { kind: "help", text: HELP["drftpd"]! };
  }
  if (!first.startsWith("-")) throw new UsageError("drftpd", `unknown command "${first}"`);
  const { values } = strictParse("drftpd", args, {
    help: { type: "boolean", short: "h" },
    version: { type: "boolean", short: "V" },
  }, false);
  if (values.version) return { kind: "version" };
  return { kind: "help", text: HELP["drftpd"]! };
}

function parseServer(kind: "master" | "slave", args: string[]): Command {
  const cmd = `drftpd ${kind}`;
  const { values } = strictParse(cmd, args, {
    config: { type: "string", short: "c" },
    "log-level": { type: "string" },
    ...COMMON_FLAGS,
  }, false);
  if (values.version) return { kind: "version" };
  if (values.help) return { kind: "help", text: HELP[cmd]! };
  return {
    kind,
    config: values.config ?? null,
    logLevel: logLevel(cmd, values["log-level"]),
  };
}

function parseLocal(args: string[]): Command {
  const cmd = "drftpd local";
  const { values } = strictParse(cmd, args, {
    slaves: { type: "string", short: "n" },
    dir: { type: "string", short: "d" },
    port: { type: "string", short: "p" },
    "tls-port": { type: "string" },
    "http-port": { type: "string" },
    "log-level": { type: "string" },
    ...COMMON_FLAGS,
  }, false);
  if (values.version) return { kind: "version" };
  if (values.help) return { kind: "help", text: HELP[cmd]! };
  const dir = values.dir ?? "data";
  if (dir === "") throw new UsageError(cmd, `--dir "": must not be empty`);
  return {
    kind: "local",
    slaves: integer(cmd, "--slaves", values.slaves, 2, 1, MAX_LOCAL_SLAVES),
    dir,
    port: integer(cmd, "--port", values.port, 2121, 1, 65535),
    tlsPort: values["tls-port"] === undefined
      ? null
      : integer(cmd, "--tls-port", values["tls-port"], 0, 1, 65535),
    httpPort: integer(cmd, "--http-port", values["http-port"], 9121, 0, 65535),
    logLevel: logLevel(cmd, values["log-level"]),
  };
}

function parseInit(args: string[]): Command {
  const cmd = "drftpd init";
  const { values } = strictParse(cmd, args, {
    dir: { type: "string", short: "d" },
    admin: { type: "string" },
    ...COMMON_FLAGS,
  }, false);
  if (values.version) return { kind: "version" };
  if (values.help) return { kind: "help", text: HELP[cmd]! };
  const dir = values.dir ?? ".";
  if (dir === "") throw new UsageError(cmd, `--dir "": must not be empty`);
  return { kind: "init", dir, admin: values.admin ?? "admin" };
}

function parseConfig(args: string[]): Command {
  const [sub, ...rest] = args;
  if (sub === undefined) throw new UsageError("drftpd config", "a subcommand is required (check)");
  if (sub === "-h" || sub === "--help") return { kind: "help", text: HELP["drftpd config"]! };
  if (sub === "-V" || sub === "--version") return { kind: "version" };
  if (sub !== "check") throw new UsageError("drftpd config", `unknown subcommand "${sub}"`);
  const cmd = "drftpd config check";
  const { values } = strictParse(cmd, rest, {
    config: { type: "string", short: "c" },
    ...COMMON_FLAGS,
  }, false);
  if (values.version) return { kind: "version" };
  if (values.help) return { kind: "help", text: HELP[cmd]! };
  if (values.config === undefined) throw new UsageError(cmd, "--config FILE is required");
  return { kind: "config-check", config: values.config };
}

function parseUser(args: string[]): Command {
  const [sub, ...rest] = args;
  if (sub === undefined) {
    throw new UsageError(
      "drftpd user",
      "a subcommand is required (add, del, passwd, show, list, change, unlock)",
    );
  }
  if (sub === "-h" || sub === "--help") return { kind: "help", text: HELP["drftpd user"]! };
  if (sub === "-V" || sub === "--version") return { kind: "version" };
  if (sub === "add") return parseUserAdd(rest);
  if (!["del", "passwd", "show", "list", "change", "unlock"].includes(sub)) {
    throw new UsageError("drftpd user", `unknown subcommand "${sub}"`);
  }
  const cmd = `drftpd user ${sub}`;
  const { values, positionals } = strictParse(cmd, rest, {
    config: { type: "string", short: "c" },
    ...COMMON_FLAGS,
    ...(sub === "passwd" ? { password: { type: "string", short: "p" } } : {}),
  }, true);
  if (values.version) return { kind: "version" };
  if (values.help) return { kind: "help", text: HELP[cmd] ?? HELP["drftpd user"]! };
  const config = values.config ?? null;
  if (sub === "list") {
    if (positionals.length > 0) {
      throw new UsageError(cmd, `unexpected argument "${positionals[0]}"`);
    }
    return { kind: "user-list", config };
  }
  const [name, ...more] = positionals;
  if (name === undefined) throw new UsageError(cmd, "the user NAME is required");
  if (sub === "change") {
    if (more.length === 0 || more.length % 2 !== 0) {
      throw new UsageError(cmd, "expected FIELD VALUE pairs after the NAME");
    }
    const changes: [string, string][] = [];
    for (let i = 0; i < more.length; i += 2) changes.push([more[i]!, more[i + 1]!]);
    return { kind: "user-change", config, name, changes };
  }
  if (more.length > 0) throw new UsageError(cmd, `unexpected argument "${more[0]}"`);
  if (sub === "passwd") {
    const password = (values as { password?: string }).password;
    if (password === undefined) throw new UsageError(cmd, "--password is required");
    return { kind: "user-passwd", config, name, password };
  }
  if (sub === "unlock") return { kind: "user-unlock", config, name };
  return { kind: sub === "del" ? "user-del" : "user-show", config, name };
}

function parseUserAdd(rest: string[]): Command {
  const cmd = "drftpd user add";
  const { values, positionals } = strictParse(cmd, rest, {
    config: { type: "string", short: "c" },
    password: { type: "string", short: "p" },
    group: { type: "string", short: "g", multiple: true },
    admin: { type: "boolean" },
    ...COMMON_FLAGS,
  }, true);
  if (values.version) return { kind: "version" };
  if (values.help) return { kind: "help", text: HELP[cmd]! };
  const [name, ...extra] = positionals;
  if (name === undefined) throw new UsageError(cmd, "the user NAME is required");
  if (extra.length > 0) throw new UsageError(cmd, `unexpected argument "${extra[0]}"`);
  if (values.password === undefined) throw new UsageError(cmd, "--password is required");
  return {
    kind: "user-add",
    config: values.config ?? null,
    name,
    password: values.password,
    groups: values.group ?? [],
    admin: values.admin ?? false,
  };
}

function parseGroup(args: string[]): Command {
  const [sub, ...rest] = args;
  if (sub === undefined) {
    throw new UsageError("drftpd group", "a subcommand is required (add, del, list, show)");
  }
  if (sub === "-h" || sub === "--help") return { kind: "help", text: HELP["drftpd group"]! };
  if (sub === "-V" || sub === "--version") return { kind: "version" };
  if (!["add", "del", "list", "show"].includes(sub)) {
    throw new UsageError("drftpd group", `unknown subcommand "${sub}"`);
  }
  const cmd = `drftpd group ${sub}`;
  const { values, positionals } = strictParse(cmd, rest, {
    config: { type: "string", short: "c" },
    ...COMMON_FLAGS,
    ...(sub === "add" ? { description: { type: "string", short: "d" } } : {}),
  }, true);
  if (values.version) return { kind: "version" };
  if (values.help) return { kind: "help", text: HELP["drftpd group"]! };
  const config = values.config ?? null;
  const [name, ...more] = positionals;
  if (sub === "list") {
    if (name !== undefined) throw new UsageError(cmd, `unexpected argument "${name}"`);
    return { kind: "group-list", config };
  }
  if (name === undefined) throw new UsageError(cmd, "the group NAME is required");
  if (more.length > 0) throw new UsageError(cmd, `unexpected argument "${more[0]}"`);
  if (sub === "add") {
    const description = (values as { description?: string }).description ?? "";
    return { kind: "group-add", config, name, description };
  }
  return { kind: sub === "del" ? "group-del" : "group-show", config, name };
}

/** Flags every (sub)command takes. */
const COMMON_FLAGS = {
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const;

type OptionSpec = {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
};

function strictParse<O extends Record<string, OptionSpec>>(
  cmd: string,
  args: readonly string[],
  options: O,
  allowPositionals: boolean,
) {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals });
  } catch (e) {
    throw new UsageError(cmd, describeParseError(e));
  }
}

/** Rewrites node:util parseArgs errors into short messages naming the flag. */
function describeParseError(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: unknown }).code;
  const quoted = /'([^']*)'/.exec(message)?.[1];
  if (quoted === undefined) return message.split("\n")[0] ?? message;
  // "'-c, --config <value>'" for options with a short alias: name the long form.
  const words = quoted.split(/[ ,]+/);
  const flag = words.find((w) => w.startsWith("--")) ?? words[0]!;
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown flag "${flag}"`;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected argument "${quoted}"`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      if (message.includes("does not take an argument")) {
        return `flag "${flag}" does not take a value`;
      }
      return `flag "${flag}" needs a value`;
  }
  return message.split("\n")[0] ?? message;
}

function integer(
  cmd: string,
  flag: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (text === undefined) return fallback;
  if (!/^[0-9]+$/.test(text)) throw new UsageError(cmd, `${flag} "${text}": not a whole number`);
  const n = Number(text);
  if (n < min || n > max) {
    throw new UsageError(cmd, `${flag} "${text}": must be between ${min} and ${max}`);
  }
  return n;
}

function logLevel(cmd: string, text: string | undefined): LogLevelName | null {
  if (text === undefined) return null;
  if (!(LOG_LEVELS as readonly string[]).includes(text)) {
    throw new UsageError(cmd, `--log-level "${text}": must be one of ${LOG_LEVELS.join(", ")}`);
  }
  return text as LogLevelName;
}

// ---------------------------------------------------------------------------------------------
// drftpd local

/** Everything `drftpd local` runs, built from the command and run-time choices. */
export interface LocalSetup {
  /** Absolute state folder. */
  dir: string;
  master: MasterConfig;
  slaves: SlaveConfig[];
  /** DIR/login.txt. */
  loginFile: string;
  /** DIR/ca.pem: the master's and the slaves' self-signed certificates, for TLS clients. */
  caFile: string;
}

/**
 * Builds the master and slave configs for `drftpd local`: master data in DIR/master, FTP on
 * 127.0.0.1:port with passive ports 50000-50099, the slave link on 127.0.0.1:linkPort, slaves
 * slave1..N rooted at DIR/slaveI, listening on 127.0.0.1 with passive ports 50I00-50I99.
 */
export function localSetup(
  cmd: LocalCommand,
  options: { cwd: string; linkPort: number; secret: string },
): LocalSetup {
  const dir = resolve(options.cwd, cmd.dir);
  const link = formatHostPort({ host: "127.0.0.1", port: options.linkPort });
  const log = { level: cmd.logLevel ?? "info" };
  const master = validateMasterConfig(
    {
      master: { data_dir: "master" },
      ftp: {
        listen: formatHostPort({ host: "127.0.0.1", port: cmd.port }),
        passive_ports: "50000-50099",
        ...(cmd.tlsPort === null
          ? {}
          : { implicit_tls_listen: formatHostPort({ host: "127.0.0.1", port: cmd.tlsPort }) }),
      },
      slaves: { listen: link, secret: options.secret },
      http: {
        listen: cmd.httpPort === 0 ? "" : formatHostPort({ host: "127.0.0.1", port: cmd.httpPort }),
      },
      log,
    },
    null,
    dir,
  );
  const slaves: SlaveConfig[] = [];
  for (let i = 1; i <= cmd.slaves; i++) {
    const from = 50000 + 100 * i;
    slaves.push(validateSlaveConfig(
      {
        slave: {
          name: `slave${i}`,
          master: link,
          secret: options.secret,
          root: `slave${i}`,
          listen_address: "127.0.0.1",
          public_address: "",
          passive_ports: `${from}-${from + 99}`,
        },
        log,
      },
      null,
      dir,
    ));
  }
  return {
    dir,
    master,
    slaves,
    loginFile: resolve(dir, "login.txt"),
    caFile: resolve(dir, "ca.pem"),
  };
}

const ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** A random string of `length` letters and digits (safe in URLs), from the system CSPRNG. */
export function randomToken(length: number): string {
  let out = "";
  while (out.length < length) {
    for (const b of crypto.getRandomValues(new Uint8Array(length))) {
      // 248 = 4 * 62: reject the tail so every character is equally likely.
      if (b < 248 && out.length < length) out += ALPHANUMERIC[b % 62];
    }
  }
  return out;
}

/** Reads the password from a login file written by {@link writeLoginFile}; null if absent. */
export async function readLoginFile(path: string): Promise<string | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  const line = text.split("\n").find((l) => l.startsWith("password="));
  const password = line?.slice("password=".length).trim();
  if (!password) throw new Error(`Login file "${path}" has no "password=" line`);
  return password;
}

/** Writes the login file (mode 0600): user, password and the ftp:// URL. */
export async function writeLoginFile(
  path: string,
  user: string,
  password: string,
  url: string,
): Promise<void> {
  const text = `# drftpd local login, created ${new Date().toISOString()}\n` +
    `user=${user}\npassword=${password}\nurl=${url}\n`;
  await Deno.writeTextFile(path, text, { mode: 0o600 });
  if (Deno.build.os !== "windows") await Deno.chmod(path, 0o600);
}

/**
 * The banner `drftpd local` prints once the master listens and every slave is online. Every
 * command in it works as printed from the same working directory.
 */
export function localBanner(setup: LocalSetup, user: string, password: string): string {
  const { host, port } = setup.master.ftp.listen;
  const url = `ftp://${user}:${password}@${host}:${port}/`;
  const implicit = setup.master.ftp.implicit_tls_listen;
  const ftps = implicit ? `ftps://${user}:${password}@${implicit.host}:${implicit.port}/` : null;
  const names = setup.slaves.map((s) => s.slave.name);
  return [
    "",
    `drftpd is running, ${names.length} slave${names.length === 1 ? "" : "s"} online: ${url}`,
    ...(ftps ? [`  implicit FTPS: ${ftps}`] : []),
    `  state: ${setup.dir} (login in ${setup.loginFile})`,
    `  slaves: ${names.join(", ")}`,
    `  certificates (self-signed) for TLS clients: ${setup.caFile}`,
    ...(setup.master.http.listen
      ? [`  status page: http://${formatHostPort(setup.master.http.listen)}/ (metrics: /metrics)`]
      : []),
    "",
    "Try:",
    `  curl --ftp-pret --no-ftp-skip-pasv-ip -T file ${url}`,
    `  curl --ftp-pret --no-ftp-skip-pasv-ip ${url}`,
    `  lftp -e "set ftp:use-pret true; set ssl:ca-file ${setup.caFile}" -u ${user},${password} ${host} -p ${port}`,
    ...(ftps ? [`  curl --ftp-pret --no-ftp-skip-pasv-ip --cacert ${setup.caFile} ${ftps}`] : []),
    "",
    "Press Ctrl-C to stop.",
    "",
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------
// Shutdown

/**
 * An AbortSignal that fires on the first SIGINT or SIGTERM; a second signal exits at once with
 * code 130. Dispose it to remove the listeners.
 */
export function shutdownSignal(): { signal: AbortSignal } & Disposable {
  const controller = new AbortController();
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  const handler = () => {
    if (controller.signal.aborted) Deno.exit(130);
    controller.abort();
  };
  for (const s of signals) Deno.addSignalListener(s, handler);
  return {
    signal: controller.signal,
    [Symbol.dispose]() {
      for (const s of signals) Deno.removeSignalListener(s, handler);
    },
  };
}
