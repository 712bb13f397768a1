/**
 * Failed-login protection per client address (like fail2ban, inside the server): an address is
 * banned while its last `banAfter` failed logins all lie within the last `banMs`, so a ban ends
 * `banMs` after the oldest of them.
 * Memory is bounded: at most `maxAddresses` addresses are tracked, the least recently failing
 * ones forgotten first.
 *
 * Security: scrypt makes each guess cost ~50 ms of CPU, two at a time; without this an attacker
 * with many connections keeps that capacity busy and guesses without end.
 */

import { sleep } from "../../shared/timers.ts";

/** Options of {@link LoginGuard}. */
export interface LoginGuardOptions {
  /** Failures within `banMs` that ban an address; 0 never bans. */
  banAfter: number;
  /** Window in which failures count, ms. */
  banMs: number;
  /** Most addresses tracked at once. Default 10,000. */
  maxAddresses?: number;
  /** The clock (tests). Default Date.now. */
  now?: () => number;
}

/** Tracks failed logins per address and says which addresses are banned. */
export class LoginGuard {
  #failures = new Map<string, number[]>();
  #banAfter: number;
  #banMs: number;
  #max: number;
  #now: () => number;

  /** Creates a guard; see {@link LoginGuardOptions}. */
  constructor(options: LoginGuardOptions) {
    const { banAfter, banMs } = options;
    if (!Number.isSafeInteger(banAfter) || banAfter < 0) {
      throw new RangeError(`banAfter must be a non-negative integer: ${banAfter}`);
    }
    if (!Number.isSafeInteger(banMs) || banMs < 1) {
      throw new RangeError(`banMs must be a positive integer: ${banMs}`);
    }
    this.#banAfter = banAfter;
    this.#banMs = banMs;
    this.#max = options.maxAddresses ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** Records a failed login from `address`; returns true when that bans it. */
  fail(address: string): boolean {
    if (this.#banAfter === 0) return false;
    const now = this.#now();
    const recent = this.#recent(address, now);
    recent.push(now);
    if (recent.length > this.#banAfter) recent.shift(); // only the last banAfter matter
    this.#failures.delete(address); // re-insert: Map order is the eviction order
    if (this.#failures.size >= this.#max) {
      const oldest = this.#failures.keys().next();
      if (!oldest.done) this.#failures.delete(oldest.value);
    }
    this.#failures.set(address, recent);
    return recent.length >= this.#banAfter;
  }

  /** Milliseconds left of `address`'s ban, 0 when it is not banned. */
  bannedFor(address: string): number {
    if (this.#banAfter === 0) return 0;
    const now = this.#now();
    const recent = this.#recent(address, now);
    if (recent.length === 0) this.#failures.delete(address);
    if (recent.length < this.#banAfter) return 0;
    return recent[0]! + this.#banMs - now;
  }

  /** The addresses banned now, with the milliseconds left of each ban (SITE BANS). */
  bans(): { address: string; msLeft: number }[] {
    const out: { address: string; msLeft: number }[] = [];
    for (const address of [...this.#failures.keys()]) {
      const msLeft = this.bannedFor(address);
      if (msLeft > 0) out.push({ address, msLeft });
    }
    return out;
  }

  /** Forgets the failures of `address`, lifting its ban; false if it had none (SITE UNBAN). */
  unban(address: string): boolean {
    return this.#failures.delete(address);
  }

  /** The failures of `address` still inside the window (pruned in place). */
  #recent(address: string, now: number): number[] {
    const list = this.#failures.get(address) ?? [];
    while (list.length > 0 && list[0]! <= now - this.#banMs) list.shift();
    return list;
  }
}

/** Options of {@link AccountGuard}. */
export interface AccountGuardOptions {
  /** Failed logins (from any addresses) that lock an account; 0 never locks. */
  lockAfter: number;
  /** How long a lock lasts, ms; failures older than this are forgotten. */
  lockMs: number;
  /** Wait after the first failure, ms; it doubles with each further one. Default 500. */
  baseDelayMs?: number;
  /** Longest wait between two attempts on one account, ms. */
  maxDelayMs: number;
  /** Most accounts tracked at once. Default 10,000. */
  maxAccounts?: number;
  /** The KV store where locks are kept (so `drftpd user unlock` can lift them), or null. */
  kv?: Deno.Kv | null;
  /** The clock (tests). Default Date.now. */
  now?: () => number;
}

/** Why an attempt on an account is not checked: it is locked for `waitMs` more. */
export interface AccountLocked {
  waitMs: number;
}

/** The KV key of an account's lock (value: the time it ends, ms). */
export function lockKey(name: string): Deno.KvKey {
  return ["login_lock", name];
}

/** Lifts the lock of account `name` (`drftpd user unlock`); false when it was not locked. */
export async function unlockAccount(kv: Deno.Kv, name: string): Promise<boolean> {
  const had = (await kv.get(lockKey(name))).value !== null;
  await kv.delete(lockKey(name));
  return had;
}

interface AccountState {
  failures: number;
  last: number;
  lockedUntil: number;
  /** Settles when the attempt in turn is done: attempts on one account run one at a time. */
  line: Promise<void>;
  /** Attempts waiting or running (the state is kept while any is). */
  waiting: number;
}

/**
 * Failed logins per account name, whatever the addresses they come from (a distributed guess
 * rotates addresses; an address ban alone does not stop it). Attempts on one account are
 * checked one at a time, and after `k` failures the next check waits until
 * `baseDelayMs·2^(k-1)` (at most `maxDelayMs`) after the last one: waiting costs no CPU.
 * After `lockAfter` failures the account is locked for `lockMs`: every attempt, right password
 * or not, is refused without hashing (recorded in KV under `["login_lock", name]`, which is
 * enforced after a restart too; `drftpd user unlock NAME` deletes it). A success resets the
 * account.
 *
 * Names are tracked whether or not such a user exists, so the replies do not tell which exist,
 * and a guesser's attempts queue behind each other, never in front of other accounts' logins.
 */
export class AccountGuard {
  #accounts = new Map<string, AccountState>();
  #lockAfter: number;
  #lockMs: number;
  #base: number;
  #maxDelay: number;
  #max: number;
  #kv: Deno.Kv | null;
  #now: () => number;

  /** Creates a guard; see {@link AccountGuardOptions}. */
  constructor(options: AccountGuardOptions) {
    this.#lockAfter = options.lockAfter;
    this.#lockMs = options.lockMs;
    this.#base = options.baseDelayMs ?? 500;
    this.#maxDelay = options.maxDelayMs;
    this.#max = options.maxAccounts ?? 10_000;
    this.#kv = options.kv ?? null;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Waits for `name`'s turn (and its slow-down), then runs `check` (the password check) and
   * counts its result; or, when the account is locked, returns how long without running it.
   * `signal` (shutdown) ends a wait early.
   */
  async attempt<T>(
    name: string,
    check: () => Promise<T | null>,
    signal: AbortSignal,
  ): Promise<{ result: T | null; locked: AccountLocked | null; lockedNow: boolean }> {
    const a = this.#state(name);
    a.waiting++;
    const previous = a.line;
    let release = () => {};
    a.line = new Promise<void>((resolve) => (release = resolve));
    try {
      await previous;
      let locked = await this.#lockedFor(name, a);
      if (locked === null && a.failures > 0) {
        await sleep(a.last + this.#delay(a.failures) - this.#now(), signal);
        locked = await this.#lockedFor(name, a);
      }
      if (locked !== null || signal.aborted) {
        return { result: null, locked: locked ?? { waitMs: 0 }, lockedNow: false };
      }
      const result = await check().catch(() => null);
      if (result !== null) {
        a.failures = 0;
        return { result, locked: null, lockedNow: false };
      }
      a.failures++;
      a.last = this.#now();
      if (this.#lockAfter > 0 && a.failures >= this.#lockAfter) {
        a.lockedUntil = a.last + this.#lockMs;
        a.failures = 0;
        await this.#kv?.set(lockKey(name), a.lockedUntil, { expireIn: this.#lockMs });
        return { result: null, locked: null, lockedNow: true };
      }
      return { result: null, locked: null, lockedNow: false };
    } finally {
      a.waiting--;
      release();
      if (a.waiting === 0 && a.failures === 0 && a.lockedUntil <= this.#now()) {
        this.#accounts.delete(name);
      }
    }
  }

  /** Lifts the lock of `name` (SITE UNLOCK); false when it was not locked. */
  async unlock(name: string): Promise<boolean> {
    const a = this.#accounts.get(name);
    const inMemory = a !== undefined && a.lockedUntil > this.#now();
    if (a) {
      a.lockedUntil = 0;
      a.failures = 0;
    }
    const inKv = this.#kv ? await unlockAccount(this.#kv, name) : false;
    return inMemory || inKv;
  }

  /**
   * The lock of `name`, or null: one recorded in KV is enforced although this process did not set
   * it (the master restarted since), and one an admin lifted in KV is noticed.
   */
  async #lockedFor(name: string, a: AccountState): Promise<AccountLocked | null> {
    const now = this.#now();
    if (a.lockedUntil <= now) {
      if (!this.#kv) return null;
      const stored = (await this.#kv.get(lockKey(name))).value;
      if (typeof stored !== "number" || stored <= now) return null;
      a.lockedUntil = stored;
      return { waitMs: stored - now };
    }
    if (this.#kv && (await this.#kv.get(lockKey(name))).value === null) {
      a.lockedUntil = 0; // unlocked by an admin
      a.failures = 0;
      return null;
    }
    return { waitMs: a.lockedUntil - now };
  }

  #delay(failures: number): number {
    return Math.min(this.#maxDelay, this.#base * 2 ** Math.min(30, failures - 1));
  }

  #state(name: string): AccountState {
    const now = this.#now();
    let a = this.#accounts.get(name);
    if (a && a.waiting === 0 && a.lockedUntil <= now && now - a.last > this.#lockMs) {
      a = undefined; // nothing recent: forgotten
    }
    if (!a) a = { failures: 0, last: 0, lockedUntil: 0, line: Promise.resolve(), waiting: 0 };
    // Re-insert last: Map order is the eviction order (least recently used first).
    this.#accounts.delete(name);
    if (this.#accounts.size >= this.#max) {
      for (const [k, v] of this.#accounts) {
        if (v.waiting === 0 && v.lockedUntil <= now) {
          this.#accounts.delete(k);
          break;
        }
      }
    }
    this.#accounts.set(name, a);
    return a;
  }
}
