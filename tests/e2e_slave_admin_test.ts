/**
 * Operating slaves: SITE SLAVE, KICKSLAVE and REPLICATION against real processes; a file whose
 * every holder is offline stays listed and RETR answers 450 naming the holders.
 */
import assert from "node:assert/strict";
import { archiveRule, loopbackSlaves, makeSite, poll, randomBytes } from "../testing/mod.ts";

Deno.test("SITE SLAVE, KICKSLAVE, REPLICATION; a file with every holder offline: 450 naming them", async () => {
  await using site = await makeSite({ slaves: loopbackSlaves("k1", "k2", "k3") });
  await using ftp = await site.control();
  await ftp.expect("MKD /pub", 257);
  const data = randomBytes(300_000);
  const { host } = await ftp.store("/pub/a.bin", data);
  const holder = site.slaveNames.find((n) => site.slaveAddress(n) === host)!;
  const other = site.slaveNames.find((n) => n !== holder)!;

  const one = await ftp.expect(`SITE SLAVE ${holder}`, 200);
  assert.match(one.text, /^ ?state=online$/m, one.text);
  assert.match(one.text, /^ ?address=\S+$/m, one.text);
  assert.match(one.text, /^ ?free=\d+ total=[1-9]\d*$/m, one.text);
  assert.match(one.text, /^ ?transfers=0 copies=0$/m, one.text);
  assert.match(one.text, /^ ?files=1 bytes=300000 /m, one.text);
  assert.match((await ftp.expect(`SITE SLAVE ${other}`, 200)).text, /^ ?files=0 bytes=0 /m);
  assert.match((await ftp.send("SITE SLAVE nosuch")).lines[0]!, /^550 No slave called nosuch/);
  assert.equal((await ftp.send("SITE SLAVE")).code, 501);

  const rep = await ftp.expect("SITE REPLICATION", 200);
  assert.match(rep.text, /^Replication: queued=0 waiting=0 running=0 copied=0 failed=0$/m);

  // KICKSLAVE drops the link; the slave reconnects and remerges by itself.
  const kick = await ftp.expect(`SITE KICKSLAVE ${holder}`, 200);
  assert.match(kick.text, /reconnects/);
  await poll(async () => {
    const log = await site.log("master");
    return log.split(`kicked slave ${holder}`)[1]?.includes(`Slave ${holder} online`)
      ? true
      : undefined;
  }, {
    timeoutMs: 30_000,
    describe: async () => `${holder} back online\n${await site.logs(4000)}`,
  });
  await site.waitSlaves([holder], "online");
  assert.match((await ftp.expect(`SITE SLAVE ${holder}`, 200)).text, /^ ?files=1 bytes=300000 /m);
  assert.match(
    (await ftp.send("SITE KICKSLAVE nosuch")).lines[0]!,
    /^550 Slave nosuch is not connected/,
  );

  // Every holder offline: the file stays listed; RETR (with PRET or without) names its holder.
  await site.killSlave(holder, "SIGKILL");
  await site.waitSlaves([holder], "offline");
  assert.match((await ftp.expect("STAT /pub", 213)).text, /a\.bin/);
  const pret = await ftp.send("PRET RETR /pub/a.bin");
  assert.equal(pret.code, 200, pret.lines.join(" | "));
  const pasv = await ftp.send("PASV");
  assert.equal(pasv.code, 450, pasv.lines.join(" | "));
  assert.match(pasv.text, new RegExp(`/pub/a\\.bin.*${holder}.*offline`), pasv.text);
  // Without PRET (another slave answers PASV, no holder can stream it to it): RETR says the same.
  await using plain = await site.control();
  await plain.expect("PASV", 227);
  const retr = await plain.send("RETR /pub/a.bin");
  assert.equal(retr.code, 450, retr.lines.join(" | "));
  assert.match(retr.text, new RegExp(`${holder}.*offline`), retr.text);
});

Deno.test("collision: a slave returning with another size keeps its copy aside, unlisted and unserved", async () => {
  await using site = await makeSite({
    slaves: loopbackSlaves("m1", "m2"),
    masterExtra: archiveRule(2),
  });
  await using ftp = await site.control();
  await ftp.expect("MKD /archive", 257);
  const data = randomBytes(200_000);
  await ftp.store("/archive/c.bin", data);
  const onBoth = async () => {
    for (const n of ["m1", "m2"]) {
      try {
        const got = await Deno.readFile(`${site.slaveRoot(n)}/archive/c.bin`);
        if (got.length !== data.length) return undefined;
      } catch {
        return undefined;
      }
    }
    return true;
  };
  await poll(onBoth, {
    timeoutMs: 30_000,
    describe: async () => `two copies\n${await site.logs(4000)}`,
  });

  // m2 returns with another file of that name (replaced, so even a partial remerge sees it).
  await site.killSlave("m2", "SIGKILL");
  await site.waitSlaves(["m2"], "offline");
  const other = randomBytes(123_456);
  const dir = `${site.slaveRoot("m2")}/archive`;
  await Deno.writeFile(`${dir}/new.tmp`, other);
  await Deno.rename(`${dir}/new.tmp`, `${dir}/c.bin`);
  await site.startSlave("m2");

  const warning = await poll(async () => {
    const log = await site.log("master");
    return /Collision on m2: \/archive\/c\.bin is 123456 bytes there but 200000 bytes on m1; its copy is kept aside as (\S+)/
      .exec(log) ?? undefined;
  }, { timeoutMs: 30_000, describe: async () => `the collision logged\n${await site.logs(4000)}` });
  const aside = warning[1]!;
  assert.match(aside, /^\/archive\/\.drftpd-collision\.\d+\.c\.bin$/);
  assert.deepEqual(await Deno.readFile(site.slaveRoot("m2") + aside), other, "kept aside intact");
  // The filelist keeps the recorded size; the collision name is never listed; replication puts
  // a correct copy back on m2, and every download gets the recorded bytes.
  assert.equal((await ftp.expect("SIZE /archive/c.bin", 213)).text, "200000");
  await poll(async () => {
    const got = await Deno.readFile(`${dir}/c.bin`);
    return got.length === data.length ? true : undefined;
  }, {
    timeoutMs: 30_000,
    describe: async () => `a good copy back on m2\n${await site.logs(4000)}`,
  });
  assert.deepEqual(await Deno.readFile(`${dir}/c.bin`), data);
  const listing = (await ftp.expect("STAT /archive", 213)).text;
  assert.doesNotMatch(listing, /collision/, listing);
  for (let i = 0; i < 4; i++) assert.deepEqual((await ftp.retrieve("/archive/c.bin")).data, data);

  // Its next remerge does not see the set-aside copy: no second warning.
  await ftp.expect("SITE KICKSLAVE m2", 200);
  await site.waitSlaves(["m2"], "online");
  await ftp.expect("SITE REMERGE m2", 200);
  await poll(async () =>
    /Slave m2 remerged: full \(asked for\) remerge/.test(await site.log("master")) || undefined
  );
  const log = await site.log("master");
  assert.equal(log.split("Collision on m2").length - 1, 1, "the collision is logged once");
  assert.match(log, /Slave m2 remerged: full \(asked for\) remerge of 1 files/);
});
