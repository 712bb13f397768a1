/**
 * Loading and validation of master.toml and slave.toml.
 *
 * Every key, its default and its parser live in one table per file ({@link MASTER_SCHEMA},
 * {@link SLAVE_SCHEMA}); defaults are written as TOML values and go through the same
 * validation as the file, so a default can never be out of shape. Unknown sections and keys,
 * wrong types and bad values throw {@link ConfigError}, whose message names the file, the key
 * and the value.
 *
 * @module
 */
import { parse as parseToml, TomlError } from "smol-toml";
import { isAbsolute, resolve } from "node:path";
import {
  type FxpRule,
  type HostPort,
  type MasterConfig,
  PATH_ACTIONS,
  type PathAction,
  type PermissionRule,
  type PortRange,
  type ReplicationRule,
  type SelectionRule,
  type SlaveConfig,
  type Subject,
} from "./config_types.ts";

export type { HostPort, MasterConfig, PortRange, SlaveConfig } from "./config_types.ts";

/** The log levels a config file may name, lowest first. */
export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;

/** One of {@link LOG_LEVELS}. */
export type LogLevelName = typeof LOG_LEVELS[number];

/** The secret both config files default to; the master and slave warn when it is in use. */
export const DEFAULT_SECRET = "change-me";

/**
 * A config file (or built-in config) that cannot be used. The message reads like
 * `master.toml: ftp.passive_ports = "50100-50000": range start is after its end`.
 */
export class ConfigError extends Error {
  /** The file it came from, as given to the parser; null for built-in config. */
  readonly file: string | null;
  /** The dotted key ("ftp.listen"), the section ("ftp"), or null for file-level problems. */
  readonly key: string | null;
  /** The offending value, when there is one. */
  readonly value: unknown;

  /** Creates the error; `detail` is what follows the file, key and value in the message. */
  constructor(file: string | null, key: string | null, value: unknown, detail: string) {
    const where = file ?? "built-in config";
    const what = key === null
      ? ""
      : value === undefined
      ? `${key}: `
      : `${key} = ${formatValue(value)}: `;
    super(`${where}: ${what}${detail}`);
    this.name = "ConfigError";
    this.file = file;
    this.key = key;
    this.value = value;
  }
}

/** Thrown by field readers; turned into a ConfigError by the caller that knows file and key. */
class Invalid extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = "Invalid";
  }
}

/** How one key is read: its default (a raw TOML value) and a reader that validates it. */
interface Field<T> {
  default: unknown;
  read(value: unknown, baseDir: string): T;
}

type SectionSchema<S> = { [K in keyof S]: Field<S[K]> };
type Schema<C> = { [K in keyof C]: SectionSchema<C[K]> };

type MasterSections = Omit<MasterConfig, "file" | "permissions" | "replication">;
type SlaveSections = Omit<SlaveConfig, "file">;

// ---------------------------------------------------------------------------------------------
// Value readers

function str(opts: { nonEmpty?: boolean; printable?: boolean } = {}): (v: unknown) => string {
  return (v) => {
    if (typeof v !== "string") throw new Invalid(`expected a string, got ${typeName(v)}`);
    if (opts.nonEmpty && v.length === 0) throw new Invalid("must not be empty");
    // deno-lint-ignore no-control-regex
    if (opts.printable && /[\x00-\x1f\x7f]/.test(v)) {
      throw new Invalid("must not contain control characters");
    }
    return v;
  };
}

function int(min: number, max: number): (v: unknown) => number {
  return num(min, max, true);
}

/** A number from `min` to `max`; a whole one when `whole`. */
function num(min: number, max: number, whole = false): (v: unknown) => number {
  return (v) => {
    if (typeof v !== "number" || !(whole ? Number.isInteger(v) : Number.isFinite(v))) {
      throw new Invalid(`expected ${whole ? "an integer" : "a number"}, got ${typeName(v)}`);
    }
    if (v < min || v > max) throw new Invalid(`must be between ${min} and ${max}`);
    return v;
  };
}

function oneOf<T extends string>(choices: readonly T[]): (v: unknown) => T {
  return (v) => {
    if (typeof v !== "string") throw new Invalid(`expected a string, got ${typeName(v)}`);
    if (!(choices as readonly string[]).includes(v)) {
      throw new Invalid(`must be one of ${choices.map((c) => `"${c}"`).join(", ")}`);
    }
    return v as T;
  };
}

function path(v: unknown, baseDir: string): string {
  const s = str({ nonEmpty: true, printable: true })(v);
  return isAbsolute(s) ? resolve(s) : resolve(baseDir, s);
}

function optionalPath(v: unknown, baseDir: string): string {
  return str()(v) === "" ? "" : path(v, baseDir);
}

function optionalHostPort(v: unknown): HostPort | null {
  return str()(v) === "" ? null : hostPort(true)(v);
}

function bool(v: unknown): boolean {
  if (typeof v !== "boolean") throw new Invalid(`expected true or false, got ${typeName(v)}`);
  return v;
}

function fingerprint(v: unknown): string {
  const s = str()(v).toLowerCase().replaceAll(":", "").replace(/^sha256/, "");
  if (s === "") return "";
  if (!/^[0-9a-f]{64}$/.test(s)) throw new Invalid('expected "sha256:" and 64 hex digits');
  return `sha256:${s}`;
}

function hostPort(allowPortZero: boolean): (v: unknown) => HostPort {
  return (v) => {
    const result = hostPortDetail(str()(v), allowPortZero);
    if (typeof result === "string") throw new Invalid(result);
    return result;
  };
}

function portRange(v: unknown): PortRange {
  const result = portRangeDetail(str()(v));
  if (typeof result === "string") throw new Invalid(result);
  return result;
}

function ipAddress(allowEmpty: boolean): (v: unknown) => string {
  return (v) => {
    const s = str()(v);
    if (s === "" && allowEmpty) return s;
    if (!isIpAddress(s)) throw new Invalid("not an IPv4 or IPv6 address");
    return s;
  };
}

function slaveName(v: unknown): string {
  const s = str()(v);
  if (!SLAVE_NAME.test(s)) {
    throw new Invalid("must be 1-64 characters from A-Z, a-z, 0-9, '_', '.', '-'");
  }
  return s;
}

function fxpRules(v: unknown): FxpRule[] {
  if (!Array.isArray(v)) throw new Invalid(`expected an array of tables, got ${typeName(v)}`);
  return v.map((rule, i) => {
    if (!isTable(rule)) throw new Invalid(`rule ${i + 1}: expected a table, got ${typeName(rule)}`);
    for (const k of Object.keys(rule)) {
      if (k !== "path" && k !== "upload" && k !== "download") {
        throw new Invalid(`rule ${i + 1}: unknown key "${k}" (expected path, upload, download)`);
      }
    }
    if (typeof rule.path !== "string" || !rule.path.startsWith("/")) {
      throw new Invalid(`rule ${i + 1}: path must be a string starting with "/"`);
    }
    for (const k of ["upload", "download"] as const) {
      if (rule[k] !== undefined && typeof rule[k] !== "boolean") {
        throw new Invalid(`rule ${i + 1}: ${k} must be true or false`);
      }
    }
    return {
      path: rule.path,
      upload: rule.upload !== false,
      download: rule.download !== false,
    };
  });
}

const SELECTION_LISTS = ["prefer", "only", "exclude"] as const;

/** `[[selection.rules]]`: a `path` glob and at least one of prefer/only/exclude (slave names). */
function selectionRules(v: unknown): SelectionRule[] {
  if (!Array.isArray(v)) {
    throw new Invalid(`expected [[selection.rules]] tables, got ${typeName(v)}`);
  }
  if (v.length > 1000) throw new Invalid("at most 1000 rules");
  return v.map((rule, i) => {
    const fail = (detail: string) => new Invalid(`rule ${i + 1}: ${detail}`);
    if (!isTable(rule)) throw fail(`expected a table, got ${typeName(rule)}`);
    for (const k of Object.keys(rule)) {
      if (k !== "path" && !(SELECTION_LISTS as readonly string[]).includes(k)) {
        throw fail(`unknown key "${k}" (expected path, ${SELECTION_LISTS.join(", ")})`);
      }
    }
    if (typeof rule.path !== "string" || !rule.path.startsWith("/") || rule.path.length > 1024) {
      throw fail(`path must be a glob starting with "/", as in "/hd/**"`);
    }
    const out: SelectionRule = { path: rule.path, prefer: [], only: [], exclude: [] };
    for (const k of SELECTION_LISTS) {
      const list = rule[k];
      if (list === undefined) continue;
      if (
        !Array.isArray(list) || list.length > 1000 ||
        !list.every((x) => typeof x === "string" && SLAVE_NAME.test(x))
      ) {
        throw fail(`${k} must be an array of slave names, as in ["slave3"]`);
      }
      out[k] = list as string[];
    }
    if (SELECTION_LISTS.every((k) => out[k].length === 0)) {
      throw fail(`names no slave (expected ${SELECTION_LISTS.join(", ")})`);
    }
    return out;
  });
}

/** `[slaves.copies]`: slave name = copies at once (0 to 16). */
function copiesPerSlave(v: unknown): Record<string, number> {
  if (!isTable(v)) throw new Invalid(`expected a table of slave = copies, got ${typeName(v)}`);
  const out: Record<string, number> = {};
  for (const [name, n] of Object.entries(v)) {
    if (!SLAVE_NAME.test(name)) throw new Invalid(`"${name}" is not a slave name`);
    try {
      out[name] = int(0, 16)(n);
    } catch (e) {
      throw new Invalid(`${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return out;
}

const USER_OR_GROUP = /^[A-Za-z0-9_.-]{1,32}$/;

/**
 * Parses a permission subject: `"*"` (anyone logged in), `"=group"`, `"user"`, each optionally
 * after `"!"` (refuses). Throws TypeError naming the text.
 */
export function parseSubject(text: string): Subject {
  const negate = text.startsWith("!");
  const rest = negate ? text.slice(1) : text;
  if (rest === "*") return { negate, kind: "any", name: "" };
  const group = rest.startsWith("=");
  const name = group ? rest.slice(1) : rest;
  if (!USER_OR_GROUP.test(name)) {
    throw new TypeError(
      `invalid subject "${text.slice(0, 40)}": use "*", "=group" or "user", optionally after "!"`,
    );
  }
  return { negate, kind: group ? "group" : "user", name };
}

/** `[[permissions]]`: each a table with `path` and subject lists per action. */
function permissionRules(v: unknown, file: string | null): PermissionRule[] {
  const fail = (i: number, detail: string) =>
    new ConfigError(file, `permissions[${i + 1}]`, undefined, detail);
  if (!Array.isArray(v)) {
    throw new ConfigError(file, "permissions", v, "expected [[permissions]] tables");
  }
  if (v.length > 1000) throw new ConfigError(file, "permissions", undefined, "at most 1000 rules");
  return v.map((rule, i) => {
    if (!isTable(rule)) throw fail(i, `expected a table, got ${typeName(rule)}`);
    if (typeof rule.path !== "string" || !rule.path.startsWith("/") || rule.path.length > 1024) {
      throw fail(i, `path must be a glob starting with "/", as in "/private/**"`);
    }
    const actions: PermissionRule["actions"] = {};
    for (const [k, list] of Object.entries(rule)) {
      if (k === "path") continue;
      if (!(PATH_ACTIONS as readonly string[]).includes(k)) {
        throw fail(i, `unknown key "${k}" (expected path, ${PATH_ACTIONS.join(", ")})`);
      }
      if (!Array.isArray(list) || !list.every((x) => typeof x === "string")) {
        throw fail(i, `${k} must be an array of subjects, as in ["=staff", "!guest", "bob", "*"]`);
      }
      try {
        actions[k as PathAction] = list.map(parseSubject);
      } catch (e) {
        throw fail(i, `${k}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    if (Object.keys(actions).length === 0) {
      throw fail(i, `names no action (expected one of ${PATH_ACTIONS.join(", ")})`);
    }
    return { path: rule.path, actions };
  });
}

/** `[[replication]]`: each a table with a `path` glob and a number of `copies`. */
function replicationRules(v: unknown, file: string | null): ReplicationRule[] {
  const fail = (i: number, detail: string) =>
    new ConfigError(file, `replication[${i + 1}]`, undefined, detail);
  if (!Array.isArray(v)) {
    throw new ConfigError(file, "replication", v, "expected [[replication]] tables");
  }
  if (v.length > 1000) throw new ConfigError(file, "replication", undefined, "at most 1000 rules");
  return v.map((rule, i) => {
    if (!isTable(rule)) throw fail(i, `expected a table, got ${typeName(rule)}`);
    for (const k of Object.keys(rule)) {
      if (k !== "path" && k !== "copies") {
        throw fail(i, `unknown key "${k}" (expected path, copies)`);
      }
    }
    if (typeof rule.path !== "string" || !rule.path.startsWith("/") || rule.path.length > 1024) {
      throw fail(i, `path must be a glob starting with "/", as in "/archive/**"`);
    }
    const copies = rule.copies;
    if (!Number.isSafeInteger(copies) || (copies as number) < 1 || (copies as number) > 16) {
      throw fail(i, "copies must be a whole number from 1 to 16");
    }
    return { path: rule.path, copies: copies as number };
  });
}

// ---------------------------------------------------------------------------------------------
// Schemas

const SLAVE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

const LOG_SECTION: SectionSchema<SlaveConfig["log"]> = {
  level: { default: "info", read: oneOf(LOG_LEVELS) },
  format: { default: "text", read: oneOf(["text", "json"] as const) },
};

/** `"off"`, `""` (= `data_dir/xferlog`, resolved by the master) or a path. */
function xferlogPath(v: unknown, baseDir: string): string | null {
  const s = str()(v);
  if (s === "off") return null;
  return s === "" ? "" : path(v, baseDir);
}

/** Every master.toml section and key with its default, as written in TOML. */
export const MASTER_SCHEMA: Schema<MasterSections> = {
  master: {
    data_dir: { default: "data/master", read: path },
  },
  ftp: {
    listen: { default: "0.0.0.0:2121", read: hostPort(true) },
    passive_ports: { default: "50000-50099", read: portRange },
    public_address: { default: "", read: ipAddress(true) },
    pasv_without_pret: {
      default: "slave",
      read: oneOf(["slave", "relay", "reject"] as const),
    },
    epsv_without_pret: { default: "pasv", read: oneOf(["pasv", "master"] as const) },
    idle_timeout: { default: 900, read: int(1, 86_400 * 7) },
    login_timeout: { default: 60, read: int(1, 3600) },
    max_connections: { default: 2000, read: int(1, 1_000_000) },
    max_connections_per_address: { default: 10, read: int(1, 1_000_000) },
    max_login_failures: { default: 3, read: int(1, 1000) },
    failed_login_delay_ms: { default: 1000, read: int(0, 60_000) },
    ban_after_failures: { default: 10, read: int(0, 1_000_000) },
    ban_seconds: { default: 300, read: int(1, 86_400 * 30) },
    account_lock_after: { default: 10, read: int(0, 1_000_000) },
    account_lock_seconds: { default: 900, read: int(1, 86_400 * 30) },
    account_max_delay_seconds: { default: 30, read: int(1, 3600) },
    banner: { default: "drftpd ready", read: str({ printable: true }) },
    fxp: { default: "deny", read: oneOf(["allow", "deny"] as const) },
    fxp_rules: { default: [], read: fxpRules },
    tls: { default: "optional", read: oneOf(["off", "optional", "required"] as const) },
    tls_cert: { default: "", read: optionalPath },
    tls_key: { default: "", read: optionalPath },
    implicit_tls_listen: { default: "", read: optionalHostPort },
    stop_grace: { default: 30, read: int(0, 3600) },
  },
  http: {
    listen: { default: "127.0.0.1:9121", read: optionalHostPort },
  },
  slaves: {
    listen: { default: "0.0.0.0:1099", read: hostPort(true) },
    secret: { default: DEFAULT_SECRET, read: str({ nonEmpty: true }) },
    tls: { default: true, read: bool },
    partial_remerge: { default: true, read: bool },
    copies_per_slave: { default: 2, read: int(1, 16) },
    copies: { default: {}, read: copiesPerSlave },
    copies_while_busy: { default: 1, read: int(0, 16) },
    heal_after: { default: 600, read: int(1, 604800) },
    handshake_timeout: { default: 10, read: int(1, 600) },
    unresponsive_after: { default: 3, read: int(2, 600) },
    drop_after: { default: 10, read: int(3, 3600) },
  },
  selection: {
    min_free: { default: 64 * 1024 * 1024, read: int(0, Number.MAX_SAFE_INTEGER) },
    max_transfers: { default: 0, read: int(0, 1_000_000) },
    weight_free: { default: 1, read: num(0, 1000) },
    weight_transfers: { default: 3, read: num(0, 1000) },
    weight_throughput: { default: 1, read: num(0, 1000) },
    rules: { default: [], read: selectionRules },
  },
  log: {
    ...LOG_SECTION,
    xferlog: { default: "", read: xferlogPath },
  },
};

/** Every slave.toml section and key with its default, as written in TOML. */
export const SLAVE_SCHEMA: Schema<SlaveSections> = {
  slave: {
    name: { default: "slave1", read: slaveName },
    master: { default: "127.0.0.1:1099", read: hostPort(false) },
    secret: { default: DEFAULT_SECRET, read: str({ nonEmpty: true }) },
    root: { default: "data/slave1", read: path },
    listen_address: { default: "0.0.0.0", read: ipAddress(false) },
    public_address: { default: "", read: ipAddress(true) },
    passive_ports: { default: "50100-50199", read: portRange },
    tls: { default: true, read: bool },
    master_fingerprint: { default: "", read: fingerprint },
    tls_cert: { default: "", read: optionalPath },
    tls_key: { default: "", read: optionalPath },
    data_engine: { default: "native", read: oneOf(["native", "zero_copy"] as const) },
    stop_grace: { default: 30, read: int(0, 3600) },
  },
  log: LOG_SECTION,
};

// ---------------------------------------------------------------------------------------------
// Public API

/**
 * Validates an already-parsed master.toml document (a plain object of sections), fills in
 * defaults and resolves relative paths against `baseDir`. Throws {@link ConfigError}.
 */
export function validateMasterConfig(
  doc: Record<string, unknown>,
  file: string | null,
  baseDir: string,
): MasterConfig {
  const { permissions = [], replication = [], ...sections } = doc;
  const valid = validate(MASTER_SCHEMA, sections, file, baseDir);
  const { unresponsive_after, drop_after } = valid.slaves;
  if (drop_after <= unresponsive_after) {
    throw new ConfigError(
      file,
      "slaves.drop_after",
      drop_after,
      `must be more than slaves.unresponsive_after (${unresponsive_after})`,
    );
  }
  return {
    file,
    ...valid,
    permissions: permissionRules(permissions, file),
    replication: replicationRules(replication, file),
  };
}

/**
 * Validates an already-parsed slave.toml document, fills in defaults and resolves relative
 * paths against `baseDir`. Throws {@link ConfigError}.
 */
export function validateSlaveConfig(
  doc: Record<string, unknown>,
  file: string | null,
  baseDir: string,
): SlaveConfig {
  return { file, ...validate(SLAVE_SCHEMA, doc, file, baseDir) };
}

/**
 * Parses and validates master.toml text. `file` names the source in errors and becomes
 * `config.file`; relative paths resolve against `baseDir`. Throws {@link ConfigError}.
 */
export function parseMasterConfig(
  text: string,
  file: string | null,
  baseDir: string,
): MasterConfig {
  return validateMasterConfig(parseDocument(text, file), file, baseDir);
}

/**
 * Parses and validates slave.toml text. `file` names the source in errors and becomes
 * `config.file`; relative paths resolve against `baseDir`. Throws {@link ConfigError}.
 */
export function parseSlaveConfig(text: string, file: string | null, baseDir: string): SlaveConfig {
  return validateSlaveConfig(parseDocument(text, file), file, baseDir);
}

/**
 * Reads and validates master.toml at `path` (relative paths inside resolve against its
 * folder), or returns the defaults (resolved against the cwd) when `path` is null.
 */
export async function loadMasterConfig(path: string | null): Promise<MasterConfig> {
  if (path === null) return parseMasterConfig("", null, Deno.cwd());
  const file = resolve(path);
  return parseMasterConfig(await readConfigFile(file), file, resolve(file, ".."));
}

/**
 * Reads and validates slave.toml at `path` (relative paths inside resolve against its
 * folder), or returns the defaults (resolved against the cwd) when `path` is null.
 */
export async function loadSlaveConfig(path: string | null): Promise<SlaveConfig> {
  if (path === null) return parseSlaveConfig("", null, Deno.cwd());
  const file = resolve(path);
  return parseSlaveConfig(await readConfigFile(file), file, resolve(file, ".."));
}

/** One effective setting, for `drftpd config check`. */
export interface Setting {
  /** Dotted key, "ftp.listen". */
  key: string;
  /** The effective value as TOML text (paths resolved, addresses normalised). */
  value: string;
  /** Whether the file set it or the default applies. */
  source: "file" | "default";
}

/**
 * Validates config text (a slave.toml when it has a `[slave]` section, else a master.toml) and
 * lists every setting with its effective value and source. Throws {@link ConfigError}.
 */
export function explainConfig(
  text: string,
  file: string | null,
  baseDir: string,
): { kind: "master" | "slave"; settings: Setting[] } {
  const doc = parseDocument(text, file);
  const kind = "slave" in doc ? "slave" : "master";
  const config =
    (kind === "slave"
      ? validateSlaveConfig(doc, file, baseDir)
      : validateMasterConfig(doc, file, baseDir)) as unknown as Record<string, unknown>;
  const schema = (kind === "slave" ? SLAVE_SCHEMA : MASTER_SCHEMA) as Record<
    string,
    Record<string, Field<unknown>>
  >;
  const settings: Setting[] = [];
  for (const [section, fields] of Object.entries(schema)) {
    const table = (doc[section] ?? {}) as Record<string, unknown>;
    const values = config[section] as Record<string, unknown>;
    for (const key of Object.keys(fields)) {
      const raw = key in table ? table[key] : fields[key]!.default;
      const value = values[key];
      settings.push({
        key: `${section}.${key}`,
        value: formatToml(value === null ? raw : value),
        source: key in table ? "file" : "default",
      });
    }
  }
  return { kind, settings };
}

/** A config value as inline TOML; addresses and port ranges as the text a file would hold. */
function formatToml(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(formatToml).join(", ")}]`;
  if (isTable(v)) {
    if (typeof v.host === "string" && typeof v.port === "number") {
      return JSON.stringify(formatHostPort(v as unknown as HostPort));
    }
    if (typeof v.from === "number" && typeof v.to === "number") {
      return JSON.stringify(`${v.from}-${v.to}`);
    }
    return `{ ${Object.entries(v).map(([k, x]) => `${k} = ${formatToml(x)}`).join(", ")} }`;
  }
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

/**
 * Parses "host:port", "[v6addr]:port" into a {@link HostPort}. The host is an IPv4 address, a
 * bracketed IPv6 address or a DNS name. Port 0 ("any free port") is accepted only with
 * `allowPortZero`. Throws TypeError naming the text.
 */
export function parseHostPort(text: string, options: { allowPortZero?: boolean } = {}): HostPort {
  const result = hostPortDetail(text, options.allowPortZero ?? false);
  if (typeof result === "string") throw new TypeError(`Invalid address "${text}": ${result}`);
  return result;
}

/** Parses an inclusive port range "50000-50099" (1-65535). Throws TypeError naming the text. */
export function parsePortRange(text: string): PortRange {
  const result = portRangeDetail(text);
  if (typeof result === "string") throw new TypeError(`Invalid port range "${text}": ${result}`);
  return result;
}

/** Whether `text` is a literal IPv4 (dotted quad) or IPv6 address (without brackets or zone). */
export function isIpAddress(text: string): boolean {
  return isIPv4(text) || isIPv6(text);
}

/** Formats a {@link HostPort} back to "host:port", bracketing IPv6 hosts. */
export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(":") ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

// ---------------------------------------------------------------------------------------------
// Internals

async function readConfigFile(file: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (e) {
    const reason = e instanceof Deno.errors.NotFound
      ? "file not found"
      : e instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : e instanceof Error
      ? e.message
      : String(e);
    throw new ConfigError(file, null, undefined, `cannot read config file: ${reason}`);
  }
}

function parseDocument(text: string, file: string | null): Record<string, unknown> {
  try {
    return parseToml(text);
  } catch (e) {
    if (e instanceof TomlError) {
      const first = (e.message.split("\n")[0] ?? "").replace(/^Invalid TOML document: /, "");
      throw new ConfigError(
        file,
        null,
        undefined,
        `invalid TOML at line ${e.line}, column ${e.column}: ${first}`,
      );
    }
    throw e;
  }
}

function validate<C>(
  schema: Schema<C>,
  doc: Record<string, unknown>,
  file: string | null,
  baseDir: string,
): C {
  const sections = Object.keys(schema);
  for (const [name, value] of Object.entries(doc)) {
    if (!sections.includes(name)) {
      throw new ConfigError(file, name, undefined, unknownDetail("section", name, sections));
    }
    if (!isTable(value)) {
      throw new ConfigError(file, name, value, `expected a [${name}] table`);
    }
  }
  const out: Record<string, Record<string, unknown>> = {};
  for (const name of sections) {
    const sectionSchema = schema[name as keyof C] as Record<string, Field<unknown>>;
    const table = (doc[name] ?? {}) as Record<string, unknown>;
    const keys = Object.keys(sectionSchema);
    for (const key of Object.keys(table)) {
      if (!keys.includes(key)) {
        throw new ConfigError(file, `${name}.${key}`, undefined, unknownDetail("key", key, keys));
      }
    }
    const section: Record<string, unknown> = {};
    for (const key of keys) {
      const field = sectionSchema[key]!;
      const raw = key in table ? table[key] : field.default;
      try {
        section[key] = field.read(raw, baseDir);
      } catch (e) {
        if (e instanceof Invalid) throw new ConfigError(file, `${name}.${key}`, raw, e.message);
        throw e;
      }
    }
    out[name] = section;
  }
  return out as C;
}

function unknownDetail(kind: "section" | "key", name: string, known: string[]): string {
  const close = known.find((k) => editDistance(k, name) <= 2);
  const hint = close === undefined ? `known: ${known.join(", ")}` : `did you mean "${close}"?`;
  return `unknown ${kind} (${hint})`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost));
    }
    prev = row;
  }
  return prev[b.length]!;
}

function hostPortDetail(text: string, allowPortZero: boolean): HostPort | string {
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const m = /^\[([^\]]*)\]:([^:]*)$/.exec(text);
    if (!m) return `expected "[ipv6]:port"`;
    host = m[1]!;
    portText = m[2]!;
    if (!isIPv6(host)) return `"${host}" is not an IPv6 address`;
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) return `expected "host:port"`;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) return `IPv6 addresses must be bracketed, as in "[::1]:21"`;
    if (host === "") return "host is missing";
    if (/^[0-9.]+$/.test(host)) {
      if (!isIPv4(host)) return `"${host}" is not an IPv4 address`;
    } else if (!isHostName(host)) {
      return `"${host}" is not a valid host name`;
    }
  }
  const port = parsePort(portText);
  if (port === null) return `port "${portText}" is not a number`;
  const min = allowPortZero ? 0 : 1;
  if (port < min || port > 65535) return `port ${port} is out of range ${min}-65535`;
  return { host, port };
}

function portRangeDetail(text: string): PortRange | string {
  const m = /^\s*([^-\s]+)\s*-\s*([^-\s]+)\s*$/.exec(text);
  if (!m) return `expected "from-to", as in "50000-50099"`;
  const from = parsePort(m[1]!);
  const to = parsePort(m[2]!);
  if (from === null) return `port "${m[1]}" is not a number`;
  if (to === null) return `port "${m[2]}" is not a number`;
  for (const p of [from, to]) {
    if (p < 1 || p > 65535) return `port ${p} is out of range 1-65535`;
  }
  if (from > to) return "range start is after its end";
  return { from, to };
}

function parsePort(text: string): number | null {
  return /^[0-9]{1,5}$/.test(text) ? Number(text) : null;
}

function isIPv4(text: string): boolean {
  const parts = text.split(".");
  return parts.length === 4 &&
    parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

function isIPv6(text: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !text.includes(":")) return false;
  try {
    new URL(`http://[${text}]/`);
    return true;
  } catch {
    return false;
  }
}

function isHostName(text: string): boolean {
  return text.length <= 253 &&
    text.split(".").every((l) => /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l));
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return "an array";
  if (v instanceof Date) return "a date";
  if (typeof v === "number") return Number.isInteger(v) ? "an integer" : "a float";
  if (typeof v === "object" && v !== null) return "a table";
  if (typeof v === "boolean") return "a boolean";
  if (typeof v === "string") return "a string";
  return typeof v;
}

function formatValue(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (v instanceof Date) return v.toISOString();
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
