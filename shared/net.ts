/**
 * Address helpers shared by master and slave: one answer to "is this the same host?" (it gates
 * FXP and the data connection peer check on both sides), and quiet closing of sockets.
 *
 * @module
 */

/**
 * Whether two textual addresses name the same host. IP addresses compare by value: IPv4-mapped
 * IPv6 (`::ffff:127.0.0.1`, `::ffff:7f00:1`) equals its IPv4 address, `[::1]` equals `::1`, and
 * IPv6 compares whatever its spelling (case, zero compression, leading zeros). Anything else
 * (a host name) compares case-insensitively.
 */
export function sameHost(a: string, b: string): boolean {
  return canonicalHost(a) === canonicalHost(b);
}

/**
 * The canonical text of an address: dotted IPv4 for IPv4 and IPv4-mapped IPv6, RFC 5952 text for
 * other IPv6 (brackets and zone dropped), a lower-cased string for anything else.
 */
export function canonicalHost(host: string): string {
  let s = host.trim().toLowerCase();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const v4 = parseIpv4(s);
  if (v4 !== null) return v4.join(".");
  const zone = s.indexOf("%");
  const v6 = parseIpv6(zone < 0 ? s : s.slice(0, zone));
  if (v6 === null) return s;
  if (v6.slice(0, 5).every((g) => g === 0) && v6[5] === 0xffff) {
    return [v6[6]! >> 8, v6[6]! & 255, v6[7]! >> 8, v6[7]! & 255].join(".");
  }
  return formatIpv6(v6);
}

/** Closes a socket, listener or file, ignoring that it may be closed already. */
export function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // already closed
  }
}

/** Whether `host` is a loopback address (127.0.0.0/8 in any spelling, `::1`) or "localhost". */
export function isLoopback(host: string): boolean {
  const h = canonicalHost(host);
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** Whether `e` is what a read or write gets when the peer closed or reset the connection. */
export function isHangUp(e: unknown): e is Error {
  return e instanceof Deno.errors.BrokenPipe || e instanceof Deno.errors.ConnectionReset ||
    e instanceof Deno.errors.ConnectionAborted || e instanceof Deno.errors.NotConnected;
}

/** The four bytes of a dotted IPv4 address, or null. */
export function parseIpv4(s: string): number[] | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out.push(n);
  }
  return out;
}

/** Eight 16-bit groups, or null when `s` is not IPv6 text (an embedded IPv4 tail is allowed). */
/** The eight 16-bit groups of an IPv6 address (with an IPv4 tail too), or null. */
export function parseIpv6(s: string): number[] | null {
  if (!s.includes(":")) return null;
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const groups = (text: string): number[] | null => {
    if (text === "") return [];
    const out: number[] = [];
    const parts = text.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIpv4(p);
        if (v4 === null) return null;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-f]{1,4}$/.test(p)) {
        out.push(parseInt(p, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === null || tail === null) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const missing = 8 - head.length - tail.length;
  if (missing < 1) return null;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}

/** RFC 5952 text: lower-case hex, no leading zeros, the longest run (≥ 2) of zero groups as "::". */
function formatIpv6(g: number[]): string {
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = g.map((n) => n.toString(16));
  if (bestLen < 2) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/**
 * The error to throw when listening failed: it names what could not listen, where, and why
 * (`inUseHint` is added to "address already in use").
 */
export function listenError(what: string, address: string, cause: unknown, inUseHint = ""): Error {
  const why = cause instanceof Deno.errors.AddrInUse
    ? `address already in use${inUseHint}`
    : cause instanceof Error
    ? cause.message
    : String(cause);
  return new Error(`Cannot listen for ${what} on ${address}: ${why}`, { cause });
}
