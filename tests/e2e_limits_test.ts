/**
 * Connection limits: per client address at accept, per user and per user and address at login,
 * each refused with 421 naming the limit; a session that ends frees its place.
 */

import assert from "node:assert/strict";
import { describeRun, FtpControl, makeSite, poll, run } from "../testing/mod.ts";

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

/**
 * Opens control connections one after another from the given source addresses (each waits for
 * its greeting), keeps them open, then logs in on the first `honest` ones; prints JSON.
 */
const FLOOD = `
import json, socket, sys
cfg = json.loads(sys.argv[1])
def reply(f):
    line = f.readline().decode(errors="replace").rstrip("\\r\\n")
    while len(line) > 3 and line[3] == "-":
        line = f.readline().decode(errors="replace").rstrip("\\r\\n")
    return line
conns = []
greetings = []
for src in cfg["sources"]:
    s = socket.create_connection((cfg["host"], cfg["port"]), timeout=30, source_address=(src, 0))
    f = s.makefile("rb")
    greetings.append(reply(f)[:3])
    conns.append((s, f))
logins = []
for s, f in conns[:cfg["honest"]]:
    try:
        s.sendall(("USER %s\\r\\n" % cfg["user"]).encode())
        r = reply(f)
        if r.startswith("331"):
            s.sendall(("PASS %s\\r\\n" % cfg["pass"]).encode())
            r = reply(f)
        logins.append(r[:3] or "closed")
    except OSError as e:
        logins.append(str(e))
print(json.dumps({"greetings": greetings, "logins": logins}))
`;

Deno.test("a flood of connections replaces itself first, not honest clients still logging in", async () => {
  await using site = await makeSite({
    slaves: [],
    logLevel: "info",
    masterExtra: "max_connections = 8\nmax_connections_per_address = 4",
  });
  // Two honest clients connect and are slow to log in; then a flood from three addresses:
  // 127.0.0.9 fills its 4 places, 127.0.0.10 fills the master and keeps reconnecting (it can only
  // replace itself), 127.0.0.11 comes with nothing held (it replaces 127.0.0.9's, the most).
  const sources = [
    "127.0.0.2",
    "127.0.0.3",
    ...Array(5).fill("127.0.0.9"),
    ...Array(8).fill("127.0.0.10"),
    ...Array(3).fill("127.0.0.11"),
  ];
  const r = await run("python3", [
    "-c",
    FLOOD,
    JSON.stringify({
      host: site.host,
      port: site.ftpPort,
      sources,
      honest: 2,
      user: site.user,
      pass: site.pass,
    }),
  ], { timeoutMs: 60_000 });
  assert.ok(r.success, describeRun("flood", r));
  const { greetings, logins } = JSON.parse(r.stdout) as { greetings: string[]; logins: string[] };
  // 127.0.0.9's fifth is refused by the per-address limit; every other one is let in.
  assert.deepEqual(greetings, sources.map((_, i) => i === 6 ? "421" : "220"));
  assert.deepEqual(logins, ["230", "230"], "the honest clients keep their places");
});
