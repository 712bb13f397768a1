/**
 * The replay queue of missed operations cannot jam (issue 11, point 4).
 *
 * - Names are limited in UTF-8 bytes at the master: an RNTO to 100 characters of 300 bytes is
 *   refused (553) before any slave sees it, so it is never queued.
 * - An operation a slave reports as impossible when it is replayed is dropped (logged as an
 *   error) and a full remerge follows; what was queued behind it still runs: a DELE queued
 *   behind it removes the file from the disk and SITE REMERGE does not list it again.
 */
import assert from "node:assert/strict";
import { exists, type FtpControl, makeSite, poll, randomBytes } from "../testing/mod.ts";

async function remerge(site: { log(n: string): Promise<string> }, ftp: FtpControl, n: number) {
  const r = await ftp.send("SITE REMERGE s1");
  assert.equal(r.code, 200, r.lines.join(" | "));
  await poll(async () => {
    const done = (await site.log("master")).split("Slave s1 remerged: full (asked for)").length - 1;
    return done >= n ? true : undefined;
  }, { describe: () => `asked-for remerge number ${n} of s1 to finish` });
}

Deno.test("replay queue: byte limits at the master, impossible operations dropped", async (t) => {
  await using site = await makeSite({ slaves: [{ name: "s1", address: "127.0.0.1" }] });
  const root = site.slaveRoot("s1");
  let remerges = 0;

  await t.step("RNTO to 100 characters of 300 bytes is refused; a later DELE runs", async () => {
    await using ftp = await site.control();
    await ftp.store("/a.bin", randomBytes(1000));
    await ftp.store("/b.bin", randomBytes(1000));
    const long = "€".repeat(100);
    assert.equal((await ftp.send("RNFR /a.bin")).code, 350);
    const r = await ftp.send(`RNTO /${long}`);
    assert.equal(r.code, 553, `RNTO to a 300-byte name: ${r.lines.join(" | ")}`);
    assert.match(r.text, /too long.*bytes/i);
    // 85 × 3 bytes = 255: the longest name that fits
    assert.equal((await ftp.send("RNFR /a.bin")).code, 350);
    assert.equal((await ftp.send(`RNTO /${"€".repeat(85)}`)).code, 250);

    await site.killSlave("s1");
    assert.equal((await ftp.send("DELE /b.bin")).code, 250);
    await site.startSlave("s1");
    await poll(async () => !(await exists(`${root}/b.bin`)) || undefined, {
      describe: () => "the queued DELE to be replayed",
    });
    await remerge(site, ftp, ++remerges);
    assert.equal((await ftp.send("SIZE /b.bin")).code, 550, "b.bin listed again after remerge");
    assert.equal((await ftp.send(`SIZE /${"€".repeat(85)}`)).code, 213);
  });

  await t.step("an operation the slave cannot do is dropped; the DELE behind it runs", async () => {
    await using ftp = await site.control();
    await ftp.store("/c.bin", randomBytes(1000));
    await ftp.store("/e.bin", randomBytes(1000));
    await site.killSlave("s1");
    assert.equal((await ftp.send("RNFR /c.bin")).code, 350);
    assert.equal((await ftp.send("RNTO /d.bin")).code, 250);
    assert.equal((await ftp.send("DELE /e.bin")).code, 250);
    // behind the master's back: the rename's target exists on the slave, so it cannot be done
    await Deno.mkdir(`${root}/d.bin`);
    await Deno.writeFile(`${root}/d.bin/keep`, randomBytes(10));
    await site.startSlave("s1");
    await poll(async () => !(await exists(`${root}/e.bin`)) || undefined, {
      describe: async () => `the DELE queued behind the impossible RNTO\n${await site.logs(4000)}`,
    });
    const log = await poll(async () => {
      const text = await site.log("master");
      return /Dropped a missed rename .* on s1/.test(text) &&
          /Slave s1 remerged: full \(scheduled\)/.test(text)
        ? text
        : undefined;
    }, { describe: () => "the impossible rename dropped and a full remerge run" });
    assert.match(log, /Already exists/);
    await remerge(site, ftp, ++remerges);
    assert.equal((await ftp.send("SIZE /e.bin")).code, 550, "e.bin listed again after remerge");
    // the queue is empty: a reconnect replays nothing
    await site.killSlave("s1");
    await site.startSlave("s1");
    assert.equal((await site.log("master")).split("Dropped a missed").length - 1, 1);
  });
});
