/**
 * Address masks of users (`ident@1.2.3.*`, `10.0.0.0/8`): syntax check and matching.
 */

/** Longest address mask, in characters. */
export const MAX_MASK_LENGTH = 128;

/**
 * Whether address mask `mask` admits `address`. Forms: `1.2.3.4`, `1.2.3.*` (glob), `10.0.0.0/8`
 * or `2001:db8::/32` (CIDR), each optionally after `ident@`. No ident lookup is made, so only the
 * ident `*` matches: a mask naming an ident never admits anyone (safe rather than permissive).
 */
export function maskMatches(mask: string, address: string): boolean {
  const at = mask.lastIndexOf("@");
  if (at >= 0 && mask.slice(0, at) !== "*") return false;
  const host = at >= 0 ? mask.slice(at + 1) : mask;
  const addr = address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
  const slash = host.indexOf("/");
  if (slash >= 0) return cidrMatches(host.slice(0, slash), Number(host.slice(slash + 1)), addr);
  let re = "^";
  for (const c of host.toLowerCase()) {
    re += c === "*" ? ".*" : c === "?" ? "." : c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(re + "$").test(addr.toLowerCase());
}

/** Checks an address mask's syntax; throws TypeError naming it. */
export function checkMask(mask: string): string {
  const bad = (why: string) => new TypeError(`Invalid address mask "${mask.slice(0, 64)}": ${why}`);
  if (typeof mask !== "string" || mask.length === 0 || mask.length > MAX_MASK_LENGTH) {
    throw bad(`use 1-${MAX_MASK_LENGTH} characters`);
  }
  const at = mask.lastIndexOf("@");
  const host = at >= 0 ? mask.slice(at + 1) : mask;
  if (!/^[0-9A-Za-z.:*?/]+$/.test(host) || (at >= 0 && !/^[^\s@]+$/.test(mask.slice(0, at)))) {
    throw bad(
      "expected ident@address, where address is 1.2.3.*, 1.2.3.4 or a CIDR like 10.0.0.0/8",
    );
  }
  const slash = host.indexOf("/");
  if (slash >= 0) {
    const bits = Number(host.slice(slash + 1));
    const base = host.slice(0, slash);
    const v4 = /^\d+\.\d+\.\d+\.\d+$/.test(base);
    if (
      !/^\d{1,3}$/.test(host.slice(slash + 1)) || bits > (v4 ? 32 : 128) ||
      (v4 ? parseV4(base) === null : parseV6(base) === null)
    ) {
      throw bad("bad CIDR: expected address/bits, as in 10.0.0.0/8");
    }
  }
  return mask;
}

function cidrMatches(base: string, bits: number, address: string): boolean {
  const a = parseV4(base) !== null ? parseV4(address) : parseV6(address);
  const b = parseV4(base) ?? parseV6(base);
  if (a === null || b === null || a.length !== b.length) return false;
  for (let i = 0; i < bits; i++) {
    const byte = i >> 3, bit = 0x80 >> (i & 7);
    if ((a[byte]! & bit) !== (b[byte]! & bit)) return false;
  }
  return true;
}

function parseV4(text: string): number[] | null {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) {
    return null;
  }
  return parts.map(Number);
}

function parseV6(text: string): number[] | null {
  if (!text.includes(":") || !/^[0-9A-Fa-f:]+$/.test(text)) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const fill = 8 - head.length - tail.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return null;
  const groups = [...head, ...Array(halves.length === 2 ? fill : 0).fill("0"), ...tail];
  if (!groups.every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g))) return null;
  return groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]);
}
