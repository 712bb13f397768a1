/**
 * Operating slaves: SITE SLAVE, KICKSLAVE and REPLICATION against real processes; a file whose
 * every holder is offline stays listed and RETR answers 450 naming the holders.
 */
import assert from "node:assert/strict";
import { makeSite, poll, randomBytes } from "../testing/mod.ts";

Deno.test("SITE SLAVE, KICKSLAVE, REPLICATION; a file with every holder offline: 450 naming them", async () => {
  await using site = await makeSite({
    slaves: [
      { name: "k1", address: "127.0.0.2" },
      { name: "k2", address: "127.0.0.3" },
      { name: "k3", address: "127.0.0.4" },
    ],
  });
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
  // Without PRET (two slaves online: the master relays): RETR says the same.
  await using plain = await site.control();
  await plain.expect("PASV", 227);
  const retr = await plain.send("RETR /pub/a.bin");
  assert.equal(retr.code, 450, retr.lines.join(" | "));
  assert.match(retr.text, new RegExp(`${holder}.*offline`), retr.text);
});
