/**
 * FTP users in Deno KV (`["user", name]`). Passwords are stored only as salted scrypt hashes,
 * with their parameters, so the cost can be raised later without invalidating old hashes.
 */
import { Buffer } from "node:buffer";
import { createHmac, randomBytes, scrypt, type ScryptOptions, timingSafeEqual } from "node:crypto";

/** A user as the rest of the master sees it (never the password hash). */
export interface User {
  name: string;
  /** Groups, primary first; never empty. */
  groups: string[];
  admin: boolean;
  /** The first group: owner group of what the user creates. */
  primaryGroup: string;
}

/** Options of `UserStore.add`. */
export interface AddUserOptions {
  /** Groups, primary first; default ["users"]. */
  groups?: string[];
  /** Site administrator; default false. */
  admin?: boolean;
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

/** What `["user", name]` holds. */
interface StoredUser {
  groups: string[];
  admin: boolean;
  password: PasswordHash;
  created: number;
}

/** Valid user and group names. */
const NAME = /^[A-Za-z0-9_.-]{1,32}$/;

/** Longest accepted password, in characters. */
const MAX_PASSWORD_LENGTH = 1024;

/** Current scrypt cost: 16 MiB of memory, ~50 ms. */
const SCRYPT = { N: 16384, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const KEY_BYTES = 32;

/**
 * How long a verified login is remembered, and for how many users. Like Dovecot's auth cache:
 * FTP clients open a control connection per parallel transfer, each logging in again, and
 * scrypt costs ~50 ms of CPU per login. A remembered login is checked with an HMAC (per-process
 * random key) of the password instead; any other password still goes through scrypt, and a new
 * password hash (user add) or a removed user makes the memory stale at once.
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

/** The KV key of a user. */
function userKey(name: string): Deno.KvKey {
  return ["user", name];
}

/** Users stored in Deno KV. The caller owns `kv` and closes it. */
export class UserStore {
  #kv: Deno.Kv;
  /**
   * Security: each scrypt takes 16 MiB and a pool thread; without a bound, a burst of (even
   * failing) logins grows the master's memory by hundreds of MiB. At most this many run at once.
   */
  #slots = new Semaphore(2);
  #verified = new Map<string, VerifiedLogin>();
  #macKey = randomBytes(32);
  #now: () => number;
  #scryptRuns = 0;

  /**
   * Uses `kv`, which the caller opened and will close. `now` (tests) replaces the clock that
   * ages remembered logins.
   */
  constructor(kv: Deno.Kv, options: { now?: () => number } = {}) {
    this.#kv = kv;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Adds a user, or REPLACES an existing user of the same name (password, groups and admin flag).
   * Throws TypeError for an invalid name, group or empty/overlong password.
   */
  async add(name: string, password: string, options: AddUserOptions = {}): Promise<User> {
    checkName(name, "user name");
    if (typeof password !== "string" || password.length === 0) {
      throw new TypeError(`Invalid password for "${name}": must not be empty`);
    }
    if (password.length > MAX_PASSWORD_LENGTH) {
      throw new TypeError(
        `Invalid password for "${name}": longer than ${MAX_PASSWORD_LENGTH} characters`,
      );
    }
    const groups = [...new Set(options.groups?.length ? options.groups : ["users"])];
    for (const g of groups) checkName(g, "group name");
    const salt = randomBytes(SALT_BYTES);
    this.#scryptRuns++;
    const hash = await deriveKey(password, salt, SCRYPT.N, SCRYPT.r, SCRYPT.p, KEY_BYTES);
    const stored: StoredUser = {
      groups,
      admin: options.admin ?? false,
      password: {
        alg: "scrypt",
        ...SCRYPT,
        salt: salt.toString("base64"),
        hash: hash.toString("base64"),
      },
      created: Date.now(),
    };
    await this.#kv.set(userKey(name), stored);
    return toUser(name, stored);
  }

  /** The user called `name`, or null (also for names that cannot exist). */
  async get(name: string): Promise<User | null> {
    if (typeof name !== "string" || !NAME.test(name)) return null;
    const r = await this.#kv.get<StoredUser>(userKey(name));
    return r.value ? toUser(name, r.value) : null;
  }

  /**
   * The user if `password` is right, else null. Never throws for bad input (the arguments come
   * straight from USER/PASS). Unknown users cost the same hashing time as known ones.
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
      await this.#slots.run(() =>
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
      return toUser(name, stored);
    }
    const expected = Buffer.from(h.hash, "base64");
    this.#scryptRuns++;
    const actual = await this.#slots.run(() =>
      deriveKey(pw, Buffer.from(h.salt, "base64"), h.N, h.r, h.p, expected.length)
    );
    if (!timingSafeEqual(actual, expected)) return null;
    this.#remember(name, { stamp, mac, at: this.#now() });
    return toUser(name, stored);
  }

  /** How many password hashes this store has computed (logins, failed ones and add()). */
  get scryptRuns(): number {
    return this.#scryptRuns;
  }

  #remember(name: string, login: VerifiedLogin): void {
    this.#verified.delete(name); // re-insert: the Map's order is the age order
    if (this.#verified.size >= LOGIN_MEMORY_USERS) {
      const oldest = this.#verified.keys().next();
      if (!oldest.done) this.#verified.delete(oldest.value);
    }
    this.#verified.set(name, login);
  }

  /** All users, sorted by name. */
  async list(): Promise<User[]> {
    const out: User[] = [];
    for await (const r of this.#kv.list<StoredUser>({ prefix: ["user"] })) {
      out.push(toUser(r.key[1] as string, r.value));
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
      if (res.ok) return true;
    }
    throw new Error(`Could not remove user "${name}": concurrent changes`);
  }
}

function toUser(name: string, s: StoredUser): User {
  const groups = s.groups.length ? [...s.groups] : ["users"];
  return { name, groups, admin: s.admin, primaryGroup: groups[0]! };
}

function checkName(value: string, what: string): void {
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
