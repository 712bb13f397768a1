import assert from "node:assert/strict";
import { checkMask, maskMatches } from "./masks.ts";

Deno.test("maskMatches: globs, CIDR, ident, IPv6 and mapped IPv4", () => {
  const cases: [string, string, boolean][] = [
    ["1.2.3.4", "1.2.3.4", true],
    ["1.2.3.4", "1.2.3.40", false],
    ["1.2.3.*", "1.2.3.99", true],
    ["1.2.3.*", "1.2.4.1", false],
    ["*@1.2.3.*", "1.2.3.7", true],
    ["bob@1.2.3.*", "1.2.3.7", false], // no ident lookup: a named ident never matches
    ["10.0.0.0/8", "10.200.3.4", true],
    ["10.0.0.0/8", "11.0.0.1", false],
    ["127.0.0.1/32", "127.0.0.1", true],
    ["127.0.0.1/32", "127.0.0.2", false],
    ["0.0.0.0/0", "8.8.8.8", true],
    ["*@127.0.0.0/8", "::ffff:127.0.0.1", true],
    ["2001:db8::/32", "2001:db8:1::5", true],
    ["2001:db8::/32", "2001:db9::5", false],
    ["10.0.0.0/8", "2001:db8::1", false],
    ["::1", "::1", true],
    ["*", "203.0.113.5", true],
  ];
  for (const [mask, addr, want] of cases) {
    assert.equal(maskMatches(mask, addr), want, `${mask} vs ${addr}`);
  }
});

Deno.test("checkMask: accepts the documented forms, names what is wrong", () => {
  for (const ok of ["1.2.3.*", "ident@1.2.3.*", "10.0.0.0/8", "2001:db8::/32", "*@*", "::1"]) {
    assert.equal(checkMask(ok), ok);
  }
  for (
    const bad of [
      "",
      "1.2.3.4/33",
      "10.0.0.0/x",
      "a b",
      "x".repeat(200),
      "1.2.3.4;rm",
      "300.1.1.1/8",
    ]
  ) {
    assert.throws(() => checkMask(bad), TypeError, bad);
  }
});
