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
