import assert from "node:assert/strict";
import { canonicalHost, closeQuietly, isLoopback, listenError, sameHost } from "./net.ts";

Deno.test("sameHost: one answer for every spelling of an address", () => {
  const same: [string, string][] = [
    ["127.0.0.1", "127.0.0.1"],
    ["::ffff:127.0.0.1", "127.0.0.1"],
    ["127.0.0.1", "::ffff:127.0.0.1"],
    ["::FFFF:127.0.0.1", "127.0.0.1"],
    ["::ffff:7f00:1", "127.0.0.1"],
    ["0:0:0:0:0:ffff:7f00:1", "::ffff:127.0.0.1"],
    ["[::ffff:127.0.0.1]", "127.0.0.1"],
    ["[::1]", "::1"],
    ["::1", "0:0:0:0:0:0:0:1"],
    ["FE80::1", "fe80::1"],
    ["fe80::1%eth0", "fe80::1"],
    ["2001:db8:0:0:0:0:2:1", "2001:db8::2:1"],
    ["2001:0db8::0001", "2001:db8::1"],
    ["Example.COM", "example.com"],
  ];
  for (const [a, b] of same) assert.ok(sameHost(a, b), `${a} = ${b}`);
  const different: [string, string][] = [
    ["127.0.0.1", "127.0.0.9"],
    ["::1", "127.0.0.1"],
    ["::ffff:127.0.0.1", "127.0.0.2"],
    ["::127.0.0.1", "127.0.0.1"], // IPv4-compatible (deprecated), not IPv4-mapped
    ["fe80::1", "fe80::2"],
    ["10.0.0.1", "10.0.0.10"],
    ["", "0.0.0.0"],
  ];
  for (const [a, b] of different) assert.ok(!sameHost(a, b), `${a} ≠ ${b}`);
});

Deno.test("canonicalHost: RFC 5952 text for IPv6, dotted for IPv4 and mapped", () => {
  const cases: [string, string][] = [
    ["::ffff:10.1.2.3", "10.1.2.3"],
    ["2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["[2001:db8::1]", "2001:db8::1"],
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
    ["host.local", "host.local"],
    ["1:2:3", "1:2:3"], // not an address: compared as text
    ["256.1.1.1", "256.1.1.1"],
  ];
  for (const [input, want] of cases) assert.equal(canonicalHost(input), want, input);
});

Deno.test("closeQuietly closes once and ignores a second close", () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  closeQuietly(l);
  closeQuietly(l);
  assert.throws(() => l.close());
});

Deno.test("isLoopback: 127.0.0.0/8 and ::1 in any spelling, localhost", () => {
  for (
    const h of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "0:0::1", "::ffff:127.0.0.1", "localhost"]
  ) {
    assert.ok(isLoopback(h), h);
  }
  for (const h of ["0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "::2", "example.com"]) {
    assert.ok(!isLoopback(h), h);
  }
});

Deno.test("listenError names what, where and why", () => {
  const inUse = new Deno.errors.AddrInUse("taken");
  const e = listenError("FTP", "127.0.0.1:21", inUse, " (is another server running?)");
  assert.equal(
    e.message,
    "Cannot listen for FTP on 127.0.0.1:21: address already in use (is another server running?)",
  );
  assert.equal(e.cause, inUse);
  assert.match(
    listenError("HTTP", "[::1]:80", new Error("denied")).message,
    /HTTP on \[::1\]:80: denied$/,
  );
});
