/**
 * Who makes room when the master is full (`max_connections`): pure, over the connections that
 * have not logged in yet.
 *
 * @module
 */
import { canonicalHost } from "../../shared/net.ts";

/**
 * The connection to close so a newcomer from `address` can be served, among `waiting` (those
 * not logged in yet, oldest first), or null when there is none.
 *
 * Security: a flood pays first. The newcomer's own address gives up its oldest waiting
 * connection when it has one, so a flood from one address only ever replaces itself; otherwise
 * the address holding the most waiting connections gives up its oldest (ties: the oldest
 * connection), so honest clients that have not logged in yet, one or two per address, go only
 * after every address with more, which the per-address limit bounds.
 */
export function evictionFor<T extends { readonly remoteHost: string }>(
  waiting: readonly T[],
  address: string,
): T | null {
  const own = canonicalHost(address);
  const counts = new Map<string, number>();
  for (const s of waiting) {
    const a = canonicalHost(s.remoteHost);
    counts.set(a, (counts.get(a) ?? 0) + 1);
  }
  if (counts.has(own)) return waiting.find((s) => canonicalHost(s.remoteHost) === own)!;
  let pick: T | null = null;
  let most = 0;
  for (const s of waiting) {
    const n = counts.get(canonicalHost(s.remoteHost))!;
    if (n > most) (pick = s, most = n);
  }
  return pick;
}
