/**
 * The master's open control connections, for the limits that count them (per address, per user,
 * per user and address, transfers at once) and for SITE WHO / SITE KICK.
 */
import { canonicalHost } from "../../shared/net.ts";

/** What the registry needs of a session. */
export interface RegisteredSession {
  readonly id: number;
  readonly remoteHost: string;
  readonly user: { name: string } | null;
  /** The running file transfer's direction, or null. */
  readonly runningKind: "upload" | "download" | null;
}

/** Open sessions, counted by address and user. */
export class SessionRegistry<S extends RegisteredSession> {
  #sessions = new Set<S>();
  #perAddress = new Map<string, number>();

  /** Adds a session (at accept). */
  add(s: S): void {
    this.#sessions.add(s);
    const a = canonicalHost(s.remoteHost);
    this.#perAddress.set(a, (this.#perAddress.get(a) ?? 0) + 1);
  }

  /** Removes a session (when it ends); safe to call twice. */
  delete(s: S): void {
    if (!this.#sessions.delete(s)) return;
    const a = canonicalHost(s.remoteHost);
    const n = (this.#perAddress.get(a) ?? 1) - 1;
    if (n <= 0) this.#perAddress.delete(a);
    else this.#perAddress.set(a, n);
  }

  /** Open sessions from `address`. */
  fromAddress(address: string): number {
    return this.#perAddress.get(canonicalHost(address)) ?? 0;
  }

  /** Sessions logged in as `user` (from `address` only, when given). */
  ofUser(user: string, address?: string): S[] {
    const a = address === undefined ? null : canonicalHost(address);
    return [...this.#sessions].filter((s) =>
      s.user?.name === user && (a === null || canonicalHost(s.remoteHost) === a)
    );
  }

  /** Running uploads or downloads of `user`. */
  transfersOf(user: string, kind: "upload" | "download"): number {
    return this.ofUser(user).filter((s) => s.runningKind === kind).length;
  }

  /** Every open session, oldest first. */
  all(): S[] {
    return [...this.#sessions];
  }
}
