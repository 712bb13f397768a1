/**
 * Address masks of users (`ident@1.2.3.*`, `10.0.0.0/8`): syntax check and matching.
 */

import { canonicalHost, parseIpv4, parseIpv6 } from "../../shared/net.ts";

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
  const addr = canonicalHost(address); // IPv4-mapped IPv6 compares as IPv4
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
      (v4 ? parseIpv4(base) === null : parseIpv6(base) === null)
    ) {
      throw bad("bad CIDR: expected address/bits, as in 10.0.0.0/8");
    }
  }
  return mask;
}

function cidrMatches(base: string, bits: number, address: string): boolean {
  const a = addressBytes(address);
  const b = addressBytes(base);
  if (a === null || b === null || a.length !== b.length) return false;
  for (let i = 0; i < bits; i++) {
    const byte = i >> 3, bit = 0x80 >> (i & 7);
    if ((a[byte]! & bit) !== (b[byte]! & bit)) return false;
  }
  return true;
}

/** An IPv4 address as 4 bytes, IPv6 as 16, or null. */
function addressBytes(text: string): number[] | null {
  return parseIpv4(text) ?? parseIpv6(text)?.flatMap((g) => [g >> 8, g & 0xff]) ?? null;
}
