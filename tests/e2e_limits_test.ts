/**
 * Connection limits: per client address at accept, per user and per user and address at login,
 * each refused with 421 naming the limit; a session that ends frees its place.
 */

import assert from "node:assert/strict";
import { FtpControl, makeSite, poll } from "../testing/mod.ts";

Deno.test("per-address and per-user connection limits answer 421 with the reason", async () => {
  await using site = await makeSite({
    slaves: [],
    logLevel: "info",
    masterExtra: "max_connections_per_address = 3",
  });
  const at = { host: site.host, port: site.ftpPort };
  await site.addUser("bob", "pw");
  const r = await site.drftpd(["user", "change", "bob", "max_logins", "1"]);
  assert.ok(r.success, r.stderr);

  await using first = await FtpControl.login(at, { user: "bob", pass: "pw" });
  await using second = await FtpControl.connect(at);
  assert.equal((await second.send("USER bob")).code, 331);
  const refused = await second.send("PASS pw");
  assert.equal(refused.code, 421);
  assert.match(refused.text, /^Too many logins for bob \(max 1\)/);

  await site.drftpd(["user", "change", "bob", "max_logins", "0", "max_logins_per_address", "1"])
    .then((x) => assert.ok(x.success, x.stderr));
  await using third = await FtpControl.connect(at);
  await third.send("USER bob");
  const perAddress = await third.send("PASS pw");
  assert.equal(perAddress.code, 421);
  assert.match(perAddress.text, /^Too many logins for bob from your address \(max 1\)/);

  // first (logged in) and two anonymous connections: the fourth from 127.0.0.1 is refused
  await using a = await FtpControl.connect(at);
  await using b = await FtpControl.connect(at);
  await using c = await FtpControl.connect(at);
  assert.equal(a.greeting.code, 220);
  assert.equal(b.greeting.code, 220);
  assert.equal(c.greeting.code, 421);
  assert.equal(c.greeting.text, "Too many connections from your address (max 3)");

  await a.quit();
  await first.quit();
  // places free up once the sessions are gone (the master notices the close asynchronously)
  await using again = await poll(async () => {
    const x = await FtpControl.connect(at);
    if (x.greeting.code === 220) return x;
    x.close();
    return undefined;
  }, { describe: () => "a connection from 127.0.0.1 accepted again" });
  assert.equal(again.greeting.code, 220);
});

Deno.test("a user's idle_timeout replaces the server's", async () => {
  await using site = await makeSite({ slaves: [], logLevel: "info" });
  await site.addUser("sleepy", "pw");
  const r = await site.drftpd(["user", "change", "sleepy", "idle_timeout", "1"]);
  assert.ok(r.success, r.stderr);
  await using ftp = await FtpControl.login({ host: site.host, port: site.ftpPort }, {
    user: "sleepy",
    pass: "pw",
  });
  const bye = await ftp.read(); // the server's 900 s would never come within the test
  assert.equal(bye.code, 421);
  assert.match(bye.text, /^Idle for 1 seconds/);
});
