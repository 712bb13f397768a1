/**
 * A slave that stops answering (SIGSTOP) while it serves downloads: after `unresponsive_after`
 * seconds of silence it is passed over, so PRET+PASV answer from the other slave (a file only it
 * holds gets 450 naming it); after `drop_after` the master drops it, and its transfers end with
 * 426 on their control connections (the relayed one's data connection is closed by the master).
 * SIGCONT brings it back: it reconnects, remerges, and serves its files again. A short stop
 * (between the two limits) only passes it over until it speaks again.
 *
 * Placement is deterministic: "a" takes the uploads before "b" starts; `both.bin` is put on b's
 * disk beforehand, so b's remerge adds it as a second holder.
 */

import assert from "node:assert/strict";
import {
  type FtpControl,
  makeSite,
  parse227,
  poll,
  randomBytes,
  readAll,
  type Site,
} from "../testing/mod.ts";
import { deadline } from "../shared/timers.ts";

const BIG = 32 * 1024 * 1024;

/**
 * Starts a download and reads only its first bytes, so the slave is left blocked writing.
 * `connectTo` replaces the 227 address (a client that ignores it reaches the master's proxy).
 */
async function stalledDownload(
  ftp: FtpControl,
  pasv: string,
  path: string,
  connectTo?: string,
): Promise<{ data: Deno.TcpConn; host: string }> {
  const r = await ftp.send(pasv);
  assert.equal(r.code, 227, r.text);
  const at = parse227(r.text);
  const data = await Deno.connect({ hostname: connectTo ?? at.host, port: at.port });
  const opening = await ftp.send(`RETR ${path}`);
  assert.equal(opening.code, 150, opening.text);
  const first = new Uint8Array(65536);
  assert.ok((await data.read(first) ?? 0) > 0, "the download should start");
  return { data, host: at.host };
}

/** Waits until the master's log shows `text` `times` times. */
async function logged(site: Site, text: string, times = 1): Promise<void> {
  await poll(async () => (await site.log("master")).split(text).length > times || undefined, {
    timeoutMs: 30_000,
    describe: async () => `"${text}" in the master's log\n${await site.logs(6000)}`,
  });
}

Deno.test("SIGSTOPped slave: passed over, dropped with 426, back after SIGCONT", async (t) => {
  await using site = await makeSite({
    slaves: [
      { name: "a", address: "127.0.0.2" },
      { name: "b", address: "127.0.0.3", start: false },
    ],
    pasvWithoutPret: "relay",
    slavesExtra: "unresponsive_after = 2\ndrop_after = 8",
    // uploads under /pref go to a first while it can take them
    masterExtra: '[[selection.rules]]\npath = "/pref/**"\nprefer = ["a"]',
  });
  const big = randomBytes(BIG);
  const both = randomBytes(100_000);
  {
    await using ftp = await site.control();
    await ftp.expect("MKD /u", 257);
    await ftp.store("/u/big.bin", big);
    await ftp.store("/u/both.bin", both);
  }
  await Deno.mkdir(`${site.slaveRoot("b")}/u`);
  await Deno.writeFile(`${site.slaveRoot("b")}/u/both.bin`, both);
  await site.startSlave("b");

  await t.step("a short stop only passes the slave over until it speaks again", async () => {
    await using ftp = await site.control();
    await ftp.expect("MKD /pref", 257);
    site.signalSlave("a", "SIGSTOP");
    try {
      // PASV asks a (preferred for /pref), which does not answer: once a's silence counts, b
      // is asked instead.
      const stoppedAt = performance.now();
      const r = await ftp.pasv("STOR /pref/up.bin");
      const pasvMs = Math.round(performance.now() - stoppedAt);
      assert.equal(r.host, "127.0.0.3", "the silent slave must be passed over");
      await ftp.transfer(r, "STOR /pref/up.bin", { upload: both });
      assert.deepEqual((await ftp.retrieve("/pref/up.bin")).data, both);
      const log = await site.log("master");
      assert.match(log, /Slave a is not responding/);
      assert.match((await ftp.send("SITE SLAVES")).text, /^ ?a online\+not-responding /m);
      assert.ok(
        log.indexOf("Slave a is not responding") < log.indexOf("PASV via slave b"),
        "a was asked first",
      );
      console.log(`PASV answered by b ${pasvMs} ms after a's SIGSTOP`);
    } finally {
      site.signalSlave("a", "SIGCONT");
    }
    await logged(site, "Slave a is responding again");
    assert.equal((await ftp.pasv("RETR /u/big.bin")).host, "127.0.0.2");
    assert.equal((await site.slaveStates()).states.a, "online");
    assert.ok(!(await site.log("master")).includes("dropping it"), "no drop after a short stop");
  });

  await t.step("a long stop: PASV goes elsewhere, transfers end with 426", async () => {
    await using direct = await site.control();
    await direct.expect("PRET RETR /u/big.bin", 200);
    const d = await stalledDownload(direct, "PASV", "/u/big.bin");
    assert.equal(d.host, "127.0.0.2");
    await using relayed = await site.control();
    const rl = await stalledDownload(relayed, "PASV", "/u/big.bin");
    assert.equal(rl.host, "127.0.0.1", "PASV without PRET is relayed by the master");
    await using proxied = await site.control();
    await proxied.expect("PRET RETR /u/big.bin", 200);
    const px = await stalledDownload(proxied, "PASV", "/u/big.bin", "127.0.0.1");
    assert.equal(px.host, "127.0.0.2", "the client ignores this address: the master proxies");

    site.signalSlave("a", "SIGSTOP");
    try {
      const stoppedAt = performance.now();
      await using ftp = await site.control();
      // Right after the stop the master does not know yet: PASV waits for a's silence to count,
      // then answers from b.
      const p = await ftp.pasv("RETR /u/both.bin");
      const pasvMs = Math.round(performance.now() - stoppedAt);
      assert.equal(p.host, "127.0.0.3");
      const got = await ftp.transfer(p, "RETR /u/both.bin");
      assert.deepEqual(got.data, both);
      // An upload goes to b.
      const up = await ftp.store("/u/new.bin", both);
      assert.equal(up.host, "127.0.0.3");
      // A file only a holds: 450 naming why.
      await ftp.expect("PRET RETR /u/big.bin", 200);
      const refused = await ftp.send("PASV");
      assert.equal(refused.code, 450, refused.text);
      assert.match(refused.text, /not responding: a/);

      // The drop: the three transfers end with 426 on their control connections, and the master
      // closes the data connections it relays and proxies.
      for (const c of [direct, relayed, proxied]) {
        const end = await c.read();
        assert.equal(end.code, 426, end.text);
      }
      const droppedMs = Math.round(performance.now() - stoppedAt);
      for (const [what, conn] of [["relayed", rl.data], ["proxied", px.data]] as const) {
        const rest = await deadline(readAll(conn).catch(() => new Uint8Array(0)), {
          ms: 10_000,
          what: `the master to close the ${what} data connection`,
        });
        assert.ok(rest.length < BIG, `the ${what} data connection must end short`);
        conn.close();
      }
      d.data.close();
      await site.waitSlaves(["a"], "offline", 10_000);
      console.log(`PASV answered ${pasvMs} ms after SIGSTOP; 426 after ${droppedMs} ms`);
    } finally {
      site.signalSlave("a", "SIGCONT");
    }
  });

  await t.step("SIGCONT: the slave reconnects, remerges and serves its files", async () => {
    await site.waitSlaves(["a"], "online", 60_000);
    await using ftp = await site.control();
    const r = await ftp.retrieve("/u/big.bin");
    assert.equal(r.host, "127.0.0.2");
    assert.ok(r.data.length === big.length && r.data.every((v, i) => v === big[i]));
    const list = await ftp.send("SITE SLAVES");
    assert.match(list.text, /a online/);
    const names = (await ftp.transfer(await ftp.pasv("NLST /u"), "NLST /u")).data;
    assert.deepEqual(
      new TextDecoder().decode(names).split(/\r?\n/).filter((l) => l).map((l) =>
        l.replace(/^.*\//, "")
      ).sort(),
      ["big.bin", "both.bin", "new.bin"],
    );
  });
});
