/**
 * Failed-login protection: each failure is answered after a delay, a connection is closed after
 * `max_login_failures`, and an address with `ban_after_failures` recent failures is refused
 * (new connections get 421, open ones cannot guess any more), while the right password keeps
 * working on connections from elsewhere (see login_guard_test.ts for the per-address rules).
 */

import assert from "node:assert/strict";
import { FtpControl, makeSite } from "../testing/mod.ts";

Deno.test("failed logins are slowed, end the connection, then ban the address", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1" }],
    masterExtra: [
      "max_login_failures = 3",
      "failed_login_delay_ms = 300",
      "ban_after_failures = 4",
      "ban_seconds = 600",
    ].join("\n"),
  });
  const address = { host: site.host, port: site.ftpPort };
  const attempt = async (ftp: FtpControl, pass: string) => {
    assert.equal((await ftp.send(`USER ${site.user}`)).code, 331);
    const t0 = performance.now();
    const r = await ftp.send(`PASS ${pass}`);
    return { ...r, ms: performance.now() - t0 };
  };

  // opened before the ban, used after it
  await using early = await FtpControl.connect(address);
  assert.equal((await early.send(`USER ${site.user}`)).code, 331);

  await using a = await FtpControl.connect(address);
  for (let i = 1; i <= 2; i++) {
    const r = await attempt(a, "wrong");
    assert.equal(r.code, 530, r.lines.join(" | "));
    assert.equal(r.text, "Login incorrect");
    assert.ok(r.ms >= 290, `failure ${i} answered after ${r.ms} ms, before the delay`);
  }
  const third = await attempt(a, "wrong");
  assert.equal(third.code, 530);
  assert.match(third.text, /too many failed logins on this connection, closing/);
  await assert.rejects(a.send("NOOP"), /closed/);

  await using b = await FtpControl.connect(address);
  const fourth = await attempt(b, "wrong");
  assert.equal(fourth.code, 530);
  assert.match(fourth.text, /too many failed logins from your address, closing/);

  await using c = await FtpControl.connect(address);
  assert.equal(c.greeting.code, 421, c.greeting.lines.join(" | "));
  assert.match(c.greeting.text, /Too many failed logins from your address; try again in \d+ s/);

  const late = await early.send(`PASS ${site.pass}`); // even the right password
  assert.equal(late.code, 421, late.lines.join(" | "));
  assert.match(await site.log("master"), /Refusing 127\.0\.0\.1 for up to 600 s: 4 failed logins/);
});

Deno.test("a right password after two failures on one connection still logs in", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1" }],
    masterExtra: "failed_login_delay_ms = 0",
  });
  await using ftp = await FtpControl.connect({ host: site.host, port: site.ftpPort });
  for (const pass of ["wrong", "also wrong"]) {
    assert.equal((await ftp.send(`USER ${site.user}`)).code, 331);
    assert.equal((await ftp.send(`PASS ${pass}`)).code, 530);
  }
  assert.equal((await ftp.send(`USER ${site.user}`)).code, 331);
  const ok = await ftp.send(`PASS ${site.pass}`);
  assert.equal(ok.code, 230, ok.lines.join(" | "));
});
