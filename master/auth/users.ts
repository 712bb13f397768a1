/**
 * FTP users and groups in Deno KV (`["user", name]`, `["group", name]`). Passwords are stored
 * only as salted scrypt hashes, with their parameters, so the cost can be raised later without
 * invalidating old hashes. Every change is a read-check-write (`atomic().check()`), so the CLI in
 * another process and the running master never lose each other's updates; the master reads the
 * record at each login, so a change takes effect at the next one.
 */
import { Buffer } from "node:buffer";
import { createHmac, randomBytes, scrypt, type ScryptOptions, timingSafeEqual } from "node:crypto";
import { getLogger } from "@logtape/logtape";
import { sleep } from "../../shared/timers.ts";
import { checkMask, maskMatches } from "./masks.ts";

/** Bytes and files moved in one period. */
export interface Counters {
  bytesUp: number;
  bytesDown: number;
  filesUp: number;
  filesDown: number;
}

/** Transfer statistics: all time, and the current UTC day, ISO week and month. */
export interface Stats {
  all: Counters;
  day: Counters;
  week: Counters;
  month: Counters;
}

/** What an administrator can change on a user (CHANGE, `drftpd user change`). */
export interface UserSettings {
  /** Groups, primary first; never empty. */
  groups: string[];
  /** Site administrator. */
  admin: boolean;
  /** The group this user administers (adds/removes its members), or null. */
  groupAdmin: string | null;
  /** How many users the group admin may have in that group. */
  groupSlots: number;
  /** Addresses the user may log in from (`ident@1.2.3.*`, `10.0.0.0/8`); empty = anywhere. */
  masks: string[];
  /** Sessions at once (0 = no limit). */
  maxLogins: number;
  /** Sessions at once from one address (0 = no limit). */
  maxLoginsPerAddress: number;
  /** Uploads at once (0 = no limit). */
  maxUploads: number;
  /** Downloads at once (0 = no limit). */
  maxDownloads: number;
  /** Seconds idle before the session is closed (0 = the server's `[ftp] idle_timeout`). */
  idleTimeout: number;
  /** Logins refused. */
  disabled: boolean;
  /** Logins refused from this time on (ms since the epoch), or null. */
  expires: number | null;
  /** Download credit earned per byte uploaded; 0 = unlimited downloads. */
  ratio: number;
  /** Bytes the user may still download (when ratio > 0). */
  credits: number;
}

/** A user as the rest of the master sees it (never the password hash). */
export interface User extends UserSettings {
  name: string;
  /** The first group: owner group of what the user creates. */
  primaryGroup: string;
  /** When it was added (ms since the epoch). */
  created: number;
  /** The last successful login, or null. */
  lastLogin: number | null;
  stats: Stats;
}

/** Options of `UserStore.add`. */
export interface AddUserOptions extends Partial<UserSettings> {
  /** Groups, primary first; default ["users"]. */
  groups?: string[];
}

/** A group. */
export interface Group {
  name: string;
  description: string;
  created: number;
}

/** `add` of a name that exists; the message says how to change it instead. */
export class UserExistsError extends Error {
  /** Creates the error naming the user. */
  constructor(name: string) {
    super(
      `User "${name}" already exists: use "user passwd" to set its password or "user change" ` +
        `to change it`,
    );
    this.name = "UserExistsError";
  }
}

/** A change of a user or group that does not exist, or whose rules forbid it. */
export class NotFoundError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "NotFoundError";
  }
}

/** How a password hash was made. */
interface PasswordHash {
  alg: "scrypt";
  N: number;
  r: number;
  p: number;
  /** base64 */
  salt: string;
  /** base64 */
  hash: string;
}

/** A period's counters, stamped with the period they belong to ("2026-12-06", "2026-W49", "2026-12"). */
interface PeriodCounters extends Counters {
  id: string;
}

/** What `["user", name]` holds (a few hundred bytes; masks are capped). */
interface StoredUser extends Partial<UserSettings> {
  groups: string[];
  admin: boolean;
  password: PasswordHash;
  created: number;
  lastLogin?: number | null;
  stats?: { all: Counters; day: PeriodCounters; week: PeriodCounters; month: PeriodCounters };
}

/** What `["group", name]` holds. */
interface StoredGroup {
  description: string;
  created: number;
}

/** Valid user and group names. */
const NAME = /^[A-Za-z0-9_.-]{1,32}$/;

/** Longest accepted password, in characters. */
const MAX_PASSWORD_LENGTH = 1024;
/** Tries of a read-change-write of one user record before giving up. */
const UPDATE_ATTEMPTS = 40;
const log = getLogger(["drftpd", "master", "auth"]);

/** Most address masks per user, and the longest one (keeps the KV value small). */
export const MAX_MASKS = 32;
/** Most groups per user. */
export const MAX_GROUPS = 32;
/** Longest group description. */
const MAX_DESCRIPTION = 200;

/** Current scrypt cost: 16 MiB of memory, ~50 ms. */
const SCRYPT = { N: 16384, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const KEY_BYTES = 32;

/**
 * How long a verified login is remembered, and for how many users. Like Dovecot's auth cache:
 * FTP clients open a control connection per parallel transfer, each logging in again, and
 * scrypt costs ~50 ms of CPU per login. A remembered login is checked with an HMAC (per-process
 * random key) of the password instead; any other password still goes through scrypt, and a new
 * password hash (passwd, a re-added user) or a removed user makes the memory stale at once,
 * because every login reads the user's record first.
 */
const LOGIN_MEMORY_MS = 10 * 60_000;
const LOGIN_MEMORY_USERS = 10_000;

/** A remembered successful login. */
interface VerifiedLogin {
  /** The stored hash it was checked against (all of it): stale once that changes. */
  stamp: string;
  /** HMAC of the password with the store's key. */
  mac: Buffer;
  /** Date.now() when scrypt verified it. */
  at: number;
}

const DEFAULT_SETTINGS: Omit<UserSettings, "groups" | "admin"> = {
  groupAdmin: null,
  groupSlots: 0,
  masks: [],
  maxLogins: 0,
  maxLoginsPerAddress: 0,
  maxUploads: 0,
  maxDownloads: 0,
  idleTimeout: 0,
  disabled: false,
  expires: null,
  ratio: 0,
  credits: 0,
};

/** A user with default settings and no statistics, changed by `overrides` (tests, previews). */
export function defaultUser(name: string, overrides: Partial<User> = {}): User {
  const groups = overrides.groups ?? ["users"];
  const zero = { bytesUp: 0, bytesDown: 0, filesUp: 0, filesDown: 0 };
  return {
    ...DEFAULT_SETTINGS,
    name,
    groups,
    admin: false,
    primaryGroup: groups[0]!,
    created: 0,
    lastLogin: null,
    stats: { all: { ...zero }, day: { ...zero }, week: { ...zero }, month: { ...zero } },
    ...overrides,
  };
}

/** The KV key of a user. */
function userKey(name: string): Deno.KvKey {
  return ["user", name];
}

/** The KV key of a group. */
function groupKey(name: string): Deno.KvKey {
  return ["group", name];
}

/** Users and groups stored in Deno KV. The caller owns `kv` and closes it. */
export class UserStore {
  #kv: Deno.Kv;
  /**
   * Security: each scrypt takes 16 MiB and a pool thread; without a bound, a burst of (even
   * failing) logins grows the master's memory by hundreds of MiB. At most this many run at once.
   */
  #slots = new Semaphore(2);
  /**
   * Decoy hashing for unknown names runs in its own slot: a guesser spraying names never holds
   * the slots real accounts' logins need (the decoy then only costs the guesser time).
   */
  #decoySlots = new Semaphore(1);
  #verified = new Map<string, VerifiedLogin>();
  #macKey = randomBytes(32);
  #now: () => number;
  #scryptRuns = 0;

  /**
   * Uses `kv`, which the caller opened and will close. `now` (tests) replaces the clock that
   * ages remembered logins and stamps statistics periods.
   */
  constructor(kv: Deno.Kv, options: { now?: () => number } = {}) {
    this.#kv = kv;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Adds a user (and any of its groups that do not exist yet). Throws {@link UserExistsError}
   * when the name is taken, TypeError for an invalid name, group, setting or password.
   */
  async add(name: string, password: string, options: AddUserOptions = {}): Promise<User> {
    checkName(name, "user name");
    const groups = [...new Set(options.groups?.length ? options.groups : ["users"])];
    const settings = checkSettings({
      ...DEFAULT_SETTINGS,
      ...withoutUndefined(options),
      groups,
      admin: options.admin ?? false,
    });
    const now = this.#now();
    const stored: StoredUser = {
      ...settings,
      password: await this.#hash(name, password),
      created: now,
      lastLogin: null,
    };
    // Users added at once may all create the same new group: the loser of that race re-reads
    // the groups and tries again; only an existing user name is final.
    for (let attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
      const op = this.#kv.atomic().check({ key: userKey(name), versionstamp: null })
        .set(userKey(name), stored);
      for (const g of groups) {
        const existing = await this.#kv.get(groupKey(g));
        if (existing.value === null) {
          op.check(existing).set(groupKey(g), { description: "", created: now });
        }
      }
      if ((await op.commit()).ok) return toUser(name, stored, now);
      if ((await this.#kv.get(userKey(name))).value !== null) throw new UserExistsError(name);
      await sleep(Math.random() * Math.min(2 ** attempt, 50));
    }
    throw new Error(`Could not add user "${name}": concurrent changes; try again`);
  }

  /** Sets a new password; throws {@link NotFoundError} when there is no such user. */
  async setPassword(name: string, password: string): Promise<void> {
    const hash = await this.#hash(name, password);
    await this.#update(name, (u) => {
      u.password = hash;
    });
  }

  /**
   * Changes settings of `name` through `change` (which may throw to refuse) and returns the
   * user as stored. Throws {@link NotFoundError}, or TypeError for a setting out of range.
   * Groups named that do not exist yet are created.
   */
  async change(name: string, change: (u: UserSettings) => void): Promise<User> {
    let groups: string[] = [];
    const stored = await this.#update(name, (u) => {
      const settings = settingsOf(u);
      change(settings);
      Object.assign(u, checkSettings(settings));
      groups = u.groups;
    });
    for (const g of groups) await this.#ensureGroup(g);
    return toUser(name, stored, this.#now());
  }

  /** Records a successful login. */
  async touchLogin(name: string): Promise<void> {
    const now = this.#now();
    await this.#update(name, (u) => {
      u.lastLogin = now;
    }).catch((e) => {
      // Removed meanwhile: nothing to record. Any other failure only loses a timestamp, which
      // must never cost the user their login.
      if (!(e instanceof NotFoundError)) {
        log.warn("Could not record the login time of {name}: {error}", { name, error: String(e) });
      }
    });
  }

  /**
   * Adds a transfer's bytes to the statistics: `bytes` moved, `file` when it completed. An
   * upload earns `ratio × bytes` credits; a download spends `bytes` of them (when ratio > 0,
   * never below zero). Returns the user as stored after it; a user removed meanwhile is
   * ignored (null).
   */
  async recordTransfer(
    name: string,
    direction: "up" | "down",
    bytes: number,
    file: boolean,
  ): Promise<User | null> {
    const now = this.#now();
    const stored = await this.#update(name, (u) => {
      const stats = currentStats(u.stats, now);
      for (const c of [stats.all, stats.day, stats.week, stats.month]) {
        if (direction === "up") {
          c.bytesUp += bytes;
          if (file) c.filesUp++;
        } else {
          c.bytesDown += bytes;
          if (file) c.filesDown++;
        }
      }
      u.stats = stats;
      const ratio = u.ratio ?? 0;
      if (ratio > 0) {
        const credits = u.credits ?? 0;
        u.credits = direction === "up"
          ? credits + Math.floor(bytes * ratio)
          : Math.max(0, credits - bytes);
      }
    }).catch((e) => {
      if (!(e instanceof NotFoundError)) throw e;
      return null;
    });
    return stored === null ? null : toUser(name, stored, now);
  }

  /** The user called `name`, or null (also for names that cannot exist). */
  async get(name: string): Promise<User | null> {
    if (typeof name !== "string" || !NAME.test(name)) return null;
    const r = await this.#kv.get<StoredUser>(userKey(name));
    return r.value ? toUser(name, r.value, this.#now()) : null;
  }

  /**
   * The user if `password` is right, else null. Never throws for bad input (the arguments come
   * straight from USER/PASS). Unknown users cost the same hashing time as known ones. Whether
   * the user may log in now (disabled, expired, address) is {@link loginRefusal}'s to say.
   */
  async verify(name: string, password: string): Promise<User | null> {
    const r = typeof name === "string" && NAME.test(name)
      ? await this.#kv.get<StoredUser>(userKey(name))
      : null;
    const stored = r?.value ?? null;
    const pw = typeof password === "string" ? password.slice(0, MAX_PASSWORD_LENGTH + 1) : "";
    if (!stored) {
      // Burn the same time so response timing does not reveal which names exist.
      this.#scryptRuns++;
      await this.#decoySlots.run(() =>
        deriveKey(pw, randomBytes(SALT_BYTES), SCRYPT.N, SCRYPT.r, SCRYPT.p, KEY_BYTES)
      );
      return null;
    }
    const h = stored.password;
    if (h.alg !== "scrypt") return null;
    const stamp = JSON.stringify(h);
    const mac = createHmac("sha256", this.#macKey).update(pw.normalize("NFC")).digest();
    const known = this.#verified.get(name);
    if (
      known !== undefined && known.stamp === stamp && this.#now() - known.at < LOGIN_MEMORY_MS &&
      timingSafeEqual(known.mac, mac)
    ) {
      return toUser(name, stored, this.#now());
    }
    const expected = Buffer.from(h.hash, "base64");
    this.#scryptRuns++;
    const actual = await this.#slots.run(() =>
      deriveKey(pw, Buffer.from(h.salt, "base64"), h.N, h.r, h.p, expected.length)
    );
    if (!timingSafeEqual(actual, expected)) return null;
    this.#remember(name, { stamp, mac, at: this.#now() });
    return toUser(name, stored, this.#now());
  }

  /** How many password hashes this store has computed (logins, failed ones and add()). */
  get scryptRuns(): number {
    return this.#scryptRuns;
  }

  /** All users, sorted by name. */
  async list(): Promise<User[]> {
    const out: User[] = [];
    const now = this.#now();
    for await (const r of this.#kv.list<StoredUser>({ prefix: ["user"] })) {
      out.push(toUser(r.key[1] as string, r.value, now));
    }
    return out;
  }

  /** Removes a user; false if there was none. */
  async remove(name: string): Promise<boolean> {
    if (typeof name !== "string" || !NAME.test(name)) return false;
    for (let attempt = 0; attempt < 10; attempt++) {
      const r = await this.#kv.get(userKey(name));
      if (r.value === null) return false;
      const res = await this.#kv.atomic().check(r).delete(userKey(name)).commit();
      if (res.ok) {
        this.#verified.delete(name);
        return true;
      }
    }
    throw new Error(`Could not remove user "${name}": concurrent changes`);
  }

  /**
   * Moves a user aside (`["deleted_user", name]`): it can no longer log in, and
   * {@link restore} brings it back with everything it had (SITE DELUSER / READD). False if there
   * was no such user.
   */
  async retire(name: string): Promise<boolean> {
    if (typeof name !== "string" || !NAME.test(name)) return false;
    const r = await this.#kv.get<StoredUser>(userKey(name));
    if (r.value === null) return false;
    const res = await this.#kv.atomic().check(r).delete(userKey(name))
      .set(["deleted_user", name], r.value).commit();
    if (!res.ok) throw new Error(`Could not delete user "${name}": concurrent changes; try again`);
    this.#verified.delete(name);
    return true;
  }

  /** Brings back a user {@link retire} moved aside. Throws when none, or the name is taken. */
  async restore(name: string): Promise<User> {
    if (typeof name !== "string" || !NAME.test(name)) {
      throw new NotFoundError(`No deleted user "${String(name).slice(0, 64)}"`);
    }
    const r = await this.#kv.get<StoredUser>(["deleted_user", name]);
    if (r.value === null) throw new NotFoundError(`No deleted user "${name}"`);
    const res = await this.#kv.atomic().check(r).check({ key: userKey(name), versionstamp: null })
      .delete(["deleted_user", name]).set(userKey(name), r.value).commit();
    if (!res.ok) throw new UserExistsError(name);
    return toUser(name, r.value, this.#now());
  }

  /** Adds a group; TypeError for a bad name, Error when it exists. */
  async addGroup(name: string, description = ""): Promise<Group> {
    checkName(name, "group name");
    const text = checkDescription(description);
    const created = this.#now();
    const res = await this.#kv.atomic().check({ key: groupKey(name), versionstamp: null })
      .set(groupKey(name), { description: text, created } satisfies StoredGroup).commit();
    if (!res.ok) throw new Error(`Group "${name}" already exists`);
    return { name, description: text, created };
  }

  /** The group called `name`, or null. */
  async getGroup(name: string): Promise<Group | null> {
    if (typeof name !== "string" || !NAME.test(name)) return null;
    const r = await this.#kv.get<StoredGroup>(groupKey(name));
    return r.value ? { name, ...r.value } : null;
  }

  /** All groups, sorted by name. */
  async listGroups(): Promise<Group[]> {
    const out: Group[] = [];
    for await (const r of this.#kv.list<StoredGroup>({ prefix: ["group"] })) {
      out.push({ name: r.key[1] as string, ...r.value });
    }
    return out;
  }

  /** Users with `group` among their groups, sorted by name. */
  async members(group: string): Promise<User[]> {
    return (await this.list()).filter((u) => u.groups.includes(group));
  }

  /**
   * Removes a group; false if there was none. Throws Error while users are still in it (they
   * would keep a group nobody can see).
   */
  async removeGroup(name: string): Promise<boolean> {
    if ((await this.getGroup(name)) === null) return false;
    const members = await this.members(name);
    if (members.length > 0) {
      throw new Error(
        `Group "${name}" still has ${members.length} member(s) (${
          members.slice(0, 5).map((u) => u.name).join(", ")
        }${members.length > 5 ? ", ..." : ""}): move them out first`,
      );
    }
    await this.#kv.delete(groupKey(name));
    return true;
  }

  async #ensureGroup(name: string): Promise<void> {
    const r = await this.#kv.get(groupKey(name));
    if (r.value !== null) return;
    await this.#kv.atomic().check(r).set(
      groupKey(name),
      {
        description: "",
        created: this.#now(),
      } satisfies StoredGroup,
    ).commit();
  }

  async #hash(name: string, password: string): Promise<PasswordHash> {
    if (typeof password !== "string" || password.length === 0) {
      throw new TypeError(`Invalid password for "${name}": must not be empty`);
    }
    if (password.length > MAX_PASSWORD_LENGTH) {
      throw new TypeError(
        `Invalid password for "${name}": longer than ${MAX_PASSWORD_LENGTH} characters`,
      );
    }
    const salt = randomBytes(SALT_BYTES);
    this.#scryptRuns++;
    const hash = await deriveKey(password, salt, SCRYPT.N, SCRYPT.r, SCRYPT.p, KEY_BYTES);
    return {
      alg: "scrypt",
      ...SCRYPT,
      salt: salt.toString("base64"),
      hash: hash.toString("base64"),
    };
  }

  /** Read, change, write with a version check; retried on concurrent writes. */
  async #update(name: string, fn: (u: StoredUser) => void): Promise<StoredUser> {
    if (typeof name !== "string" || !NAME.test(name)) {
      throw new NotFoundError(`No such user: "${String(name).slice(0, 64)}"`);
    }
    for (let attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
      const r = await this.#kv.get<StoredUser>(userKey(name));
      if (r.value === null) throw new NotFoundError(`No such user: "${name}"`);
      const next = structuredClone(r.value);
      fn(next);
      const res = await this.#kv.atomic().check(r).set(userKey(name), next).commit();
      if (res.ok) return next;
      // Many sessions of one user (a client opening parallel connections) write at once: a
      // random pause that grows with the attempts spreads them out instead of colliding again.
      await sleep(Math.random() * Math.min(2 ** attempt, 50));
    }
    throw new Error(`Could not change user "${name}": concurrent changes; try again`);
  }

  #remember(name: string, login: VerifiedLogin): void {
    this.#verified.delete(name); // re-insert: the Map's order is the age order
    if (this.#verified.size >= LOGIN_MEMORY_USERS) {
      const oldest = this.#verified.keys().next();
      if (!oldest.done) this.#verified.delete(oldest.value);
    }
    this.#verified.set(name, login);
  }
}

/**
 * Why `user` may not log in from `address` at `now`, or null when it may: disabled, expired, or
 * an address outside its masks. Security: checked after the password, so the reason is only
 * told to someone who knows it.
 */
export function loginRefusal(user: User, address: string, now: number): string | null {
  if (user.disabled) return "Account disabled";
  if (user.expires !== null && now >= user.expires) return "Account expired";
  if (user.masks.length > 0 && !user.masks.some((m) => maskMatches(m, address))) {
    return "Login not allowed from this address";
  }
  return null;
}

/** The statistics as of `now`: periods that have ended start again at zero. */
function currentStats(
  s: StoredUser["stats"],
  now: number,
): NonNullable<StoredUser["stats"]> {
  const ids = periodIds(now);
  const fresh = (id: string): PeriodCounters => ({ id, ...zero() });
  return {
    all: s ? { ...s.all } : zero(),
    day: s?.day.id === ids.day ? { ...s.day } : fresh(ids.day),
    week: s?.week.id === ids.week ? { ...s.week } : fresh(ids.week),
    month: s?.month.id === ids.month ? { ...s.month } : fresh(ids.month),
  };
}

function zero(): Counters {
  return { bytesUp: 0, bytesDown: 0, filesUp: 0, filesDown: 0 };
}

/** The UTC day, ISO week and month `now` falls in. */
export function periodIds(now: number): { day: string; week: string; month: string } {
  const d = new Date(now);
  const day = d.toISOString().slice(0, 10);
  // ISO week: the week's Thursday decides the year.
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const dow = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - dow);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return {
    day,
    week: `${t.getUTCFullYear()}-W${String(week).padStart(2, "0")}`,
    month: day.slice(0, 7),
  };
}

function settingsOf(s: StoredUser): UserSettings {
  const groups = s.groups.length ? [...s.groups] : ["users"];
  return {
    ...DEFAULT_SETTINGS,
    ...withoutUndefined(s as Partial<UserSettings>),
    masks: [...(s.masks ?? [])],
    groups,
    admin: s.admin,
  };
}

function toUser(name: string, s: StoredUser, now: number): User {
  const settings = settingsOf(s);
  const stats = currentStats(s.stats, now);
  const strip = ({ id: _id, ...c }: PeriodCounters): Counters => c;
  return {
    name,
    ...settings,
    primaryGroup: settings.groups[0]!,
    created: s.created,
    lastLogin: s.lastLogin ?? null,
    stats: {
      all: stats.all,
      day: strip(stats.day),
      week: strip(stats.week),
      month: strip(stats.month),
    },
  };
}

function checkSettings(s: UserSettings): UserSettings {
  if (!Array.isArray(s.groups) || s.groups.length === 0) {
    throw new TypeError("A user needs at least one group");
  }
  if (s.groups.length > MAX_GROUPS) throw new TypeError(`At most ${MAX_GROUPS} groups per user`);
  s.groups = [...new Set(s.groups)];
  for (const g of s.groups) checkName(g, "group name");
  if (s.groupAdmin !== null) checkName(s.groupAdmin, "group name");
  if (s.masks.length > MAX_MASKS) {
    throw new TypeError(`At most ${MAX_MASKS} address masks per user`);
  }
  s.masks = [...new Set(s.masks.map(checkMask))];
  const counts = [
    ["group_slots", s.groupSlots],
    ["max_logins", s.maxLogins],
    ["max_logins_per_address", s.maxLoginsPerAddress],
    ["max_uploads", s.maxUploads],
    ["max_downloads", s.maxDownloads],
    ["idle_timeout", s.idleTimeout],
  ] as const;
  for (const [what, n] of counts) {
    if (!Number.isSafeInteger(n) || n < 0 || n > 1_000_000) {
      throw new TypeError(`Invalid ${what} ${n}: use a whole number from 0 to 1000000`);
    }
  }
  if (!Number.isFinite(s.ratio) || s.ratio < 0 || s.ratio > 1000) {
    throw new TypeError(`Invalid ratio ${s.ratio}: use a number from 0 (unlimited) to 1000`);
  }
  if (!Number.isSafeInteger(s.credits) || s.credits < 0) {
    throw new TypeError(`Invalid credits ${s.credits}: use a whole number of bytes, 0 or more`);
  }
  if (s.expires !== null && !Number.isSafeInteger(s.expires)) {
    throw new TypeError(`Invalid expiry ${s.expires}`);
  }
  return s;
}

function checkDescription(text: string): string {
  // deno-lint-ignore no-control-regex
  if (typeof text !== "string" || text.length > MAX_DESCRIPTION || /[\x00-\x1f\x7f]/.test(text)) {
    throw new TypeError(`Invalid description: at most ${MAX_DESCRIPTION} printable characters`);
  }
  return text;
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Throws TypeError unless `value` is a valid user or group name. */
export function checkName(value: string, what: string): void {
  if (typeof value !== "string" || !NAME.test(value)) {
    throw new TypeError(
      `Invalid ${what}: "${String(value).slice(0, 64)}": use 1-32 of A-Z a-z 0-9 _ . -`,
    );
  }
}

/** A counting semaphore. */
class Semaphore {
  #free: number;
  #waiting: (() => void)[] = [];

  constructor(n: number) {
    this.#free = n;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((r) => this.#waiting.push(r));
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

/** scrypt in the callback form: the work runs off the main thread. */
function deriveKey(
  password: string,
  salt: Uint8Array,
  N: number,
  r: number,
  p: number,
  keyLen: number,
): Promise<Buffer> {
  const options: ScryptOptions = { N, r, p, maxmem: 256 * N * r + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(
      password.normalize("NFC"),
      salt,
      keyLen,
      options,
      (err, key) => err ? reject(err) : resolve(key),
    );
  });
}
