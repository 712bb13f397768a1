/**
 * Copy settings at run time: a reload (SIGHUP, SITE RELOAD) raises a rule from 2 to 3 copies and a
 * bad file changes nothing; copies wait while a slave serves a client (`copies_while_busy = 0`);
 * `[slaves.copies]` keeps a slave out of copies.
 */
import assert from "node:assert/strict";
import {
  archiveRule,
  type FtpControl,
  loopbackSlaves,
  makeSite,
  poll,
  randomBytes,
  type Site,
  slavesHolding,
} from "../testing/mod.ts";

/** Polls until `relPath` is on exactly `n` slave roots; returns them. */
function copiesOn(site: Site, relPath: string, n: number): Promise<string[]> {
  return poll(async () => {
    const h = await slavesHolding(site, relPath);
    return h.length === n ? h : undefined;
  }, {
    timeoutMs: 30_000,
    describe: async () =>
      `${relPath} on ${n} slaves (${await slavesHolding(site, relPath)})\n${await site.logs(4000)}`,
  });
}

async function editConfig(site: Site, from: string, to: string): Promise<void> {
  const text = await Deno.readTextFile(site.masterConfig);
  assert.ok(text.includes(from), `master.toml has ${from}`);
  await Deno.writeTextFile(site.masterConfig, text.replace(from, to));
}

/** SITE REPLICATION's first line. */
async function replicationLine(ftp: FtpControl): Promise<string> {
  return (await ftp.expect("SITE REPLICATION", 200)).text.split("\n")[0]!;
}

Deno.test("reload: a bad master.toml changes nothing; copies = 2 raised to 3 makes a third copy", async () => {
  await using site = await makeSite({
    slaves: loopbackSlaves("c1", "c2", "c3"),
    masterExtra: `banner = "hello"\n${archiveRule(2)}`,
  });
  await using ftp = await site.control();
  await ftp.expect("MKD /archive", 257);
  const data = randomBytes(500_000);
  await ftp.store("/archive/r.bin", data);
  const two = await copiesOn(site, "archive/r.bin", 2);

  // A bad file: SITE RELOAD says why, and the running rules stay.
  await editConfig(site, "copies = 2", 'copies = "three"');
  const bad = await ftp.send("SITE RELOAD");
  assert.equal(bad.code, 550, bad.lines.join(" | "));
  assert.match(bad.text, /Reload failed, the running config stays: .*replication\[1\]/, bad.text);
  assert.deepEqual((await slavesHolding(site, "archive/r.bin")).sort(), two.sort());
  assert.match(await site.log("master"), /Reload of .* failed, the running config stays/);

  // copies = 3 and SIGHUP: a third copy appears, with the same bytes.
  await editConfig(site, 'copies = "three"', "copies = 3");
  site.signalMaster("SIGHUP");
  const three = await copiesOn(site, "archive/r.bin", 3);
  for (const name of three) {
    assert.deepEqual(await Deno.readFile(`${site.slaveRoot(name)}/archive/r.bin`), data, name);
  }
  assert.match(await site.log("master"), /Reloaded .*master\.toml: applied replication/);

  // SITE RELOAD with nothing changed; a change that needs a restart is named.
  assert.match((await ftp.expect("SITE RELOAD", 200)).text, /applied: nothing changed/);
  await editConfig(site, 'banner = "hello"', 'banner = "changed"');
  const later = await ftp.expect("SITE RELOAD", 200);
  assert.match(later.text, /applied at the next restart: ftp\.banner/, later.text);
  const again = await ftp.expect("SITE RELOAD", 200);
  assert.match(again.text, /applied: nothing changed/, again.text);
  assert.match(again.text, /applied at the next restart: ftp\.banner/, "still not applied");
});

Deno.test("copies wait while a slave serves a client (copies_while_busy = 0), then run", async () => {
  await using site = await makeSite({
    slaves: loopbackSlaves("w1", "w2"),
    masterExtra: archiveRule(1),
    slavesExtra: "copies_while_busy = 0",
  });
  await using ftp = await site.control();
  await ftp.expect("MKD /archive", 257);
  await ftp.expect("MKD /in", 257);
  const data = randomBytes(300_000);
  await ftp.store("/archive/y.bin", data);
  await copiesOn(site, "archive/y.bin", 1);

  // A client upload that stays open keeps one of the two slaves busy; every copy needs both.
  await using client = await site.control();
  const endpoint = await client.pasv("STOR /in/open.bin");
  const conn = await Deno.connect({ hostname: endpoint.host, port: endpoint.port });
  try {
    const started = await client.send("STOR /in/open.bin");
    assert.equal(started.code, 150, started.lines.join(" | "));
    await conn.write(new Uint8Array(1000));

    await editConfig(site, "copies = 1", "copies = 2");
    assert.match((await ftp.expect("SITE RELOAD", 200)).text, /applied: replication/);
    const waiting = await poll(async () => {
      const line = await replicationLine(ftp);
      return /waiting=1 /.test(line) ? line : undefined;
    }, { describe: async () => `a file waiting for a slot\n${await site.logs(4000)}` });
    assert.match(waiting, /running=0 copied=0 /, waiting);
    assert.equal((await slavesHolding(site, "archive/y.bin")).length, 1, "no copy while busy");
  } finally {
    conn.close();
  }
  assert.equal((await client.read()).code, 226);
  // The client transfer is over: the waiting copy runs.
  const both = await copiesOn(site, "archive/y.bin", 2);
  for (const name of both) {
    assert.deepEqual(await Deno.readFile(`${site.slaveRoot(name)}/archive/y.bin`), data, name);
  }
  await poll(async () =>
    /waiting=0 running=0 copied=1 /.test(await replicationLine(ftp)) || undefined
  );
});

Deno.test("[slaves.copies]: a slave with 0 takes part in no copy", async () => {
  await using site = await makeSite({
    slaves: loopbackSlaves("p1", "p2", "p3"),
    masterExtra: archiveRule(2),
    slavesExtra: "[slaves.copies]\np3 = 0",
  });
  await using ftp = await site.control();
  await ftp.expect("MKD /archive", 257);
  const names: string[] = [];
  for (let i = 0; i < 4; i++) {
    const { host } = await ftp.store(`/archive/f${i}.bin`, randomBytes(50_000));
    const first = site.slaveNames.find((n) => site.slaveAddress(n) === host)!;
    if (first !== "p3") names.push(`archive/f${i}.bin`);
  }
  assert.ok(names.length > 0, "some uploads landed on p1 or p2");
  for (const rel of names) {
    assert.deepEqual((await copiesOn(site, rel, 2)).sort(), ["p1", "p2"], rel);
  }
});
