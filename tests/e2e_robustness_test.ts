/**
 * Failure paths a distributed server must survive, beyond the happy path:
 * - files already on a slave's disk when it first joins are merged into the filelist (remerge);
 * - with no slave online, uploads fail promptly with a 4xx/5xx (passive and active), not a hang;
 * - ABOR during a download gets its replies and leaves the session usable;
 * - a slave killed in the middle of a download: the client gets a 4xx on the control
 *   connection, the master keeps serving, and the file is whole again once the slave is back.
 */

import assert from "node:assert/strict";
import { type FtpReply, makeSite, randomBytes, readAll, sha256 } from "../testing/mod.ts";
import { deadline } from "../shared/timers.ts";

const BIG = 32 * 1024 * 1024;

Deno.test("failure paths: remerge, no slave, ABOR, slave dying mid-transfer", async (t) => {
  await using site = await makeSite({
    slaves: [{ name: "s2", address: "127.0.0.2", start: false }],
  });
  const root = site.slaveRoot("s2");
  const big = randomBytes(BIG);
  const small = randomBytes(4321);

  await t.step("with no slave online, uploads fail promptly", async () => {
    await using ftp = await site.control();
    const pret = await ftp.send("PRET STOR /nowhere.bin");
    let refusal: FtpReply = pret;
    if (pret.code === 200) refusal = await ftp.send("PASV");
    assert.ok(refusal.code >= 400 && refusal.code < 600, `passive: ${refusal.lines.join(" | ")}`);

    // active: PORT to our own listener, then STOR
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const portReply = await ftp.send(`PORT 127,0,0,1,${port >> 8},${port & 255}`);
    assert.equal(portReply.code, 200, portReply.lines.join(" | "));
    let stor = await ftp.send("STOR /nowhere.bin");
    if (stor.code === 150 || stor.code === 125) stor = await ftp.read();
    assert.ok(stor.code >= 400 && stor.code < 600, `active: ${stor.lines.join(" | ")}`);
    assert.equal((await ftp.send("NOOP")).code, 200);
  });

  await t.step("files on the slave's disk before it joins are merged in", async () => {
    await Deno.mkdir(`${root}/pre/deep`, { recursive: true });
    await Deno.writeFile(`${root}/pre/big.bin`, big);
    await Deno.writeFile(`${root}/pre/deep/small.bin`, small);
    await site.startSlave("s2");

    await using ftp = await site.control();
    const size = await ftp.send("SIZE /pre/big.bin");
    assert.deepEqual([size.code, size.text.trim()], [213, String(BIG)]);
    const { data } = await ftp.retrieve("/pre/deep/small.bin");
    assert.equal(await sha256(data), await sha256(small));
  });

  await t.step("ABOR during a download", async () => {
    await using ftp = await site.control();
    const pasv = await ftp.pasv("RETR /pre/big.bin");
    const data = await Deno.connect({ hostname: pasv.host, port: pasv.port });
    try {
      const r = await ftp.send("RETR /pre/big.bin");
      assert.ok(r.code === 150 || r.code === 125, r.lines.join(" | "));
      const chunk = new Uint8Array(65536);
      assert.notEqual(await data.read(chunk), null);
      await ftp.write("ABOR");
      data.close();
      // 426 (transfer aborted) then 226/225 (ABOR done); a server may send only the 2xx
      const replies: FtpReply[] = [];
      while (true) {
        const reply = await ftp.read();
        replies.push(reply);
        if (reply.code < 400 || replies.length >= 3) break;
      }
      assert.deepEqual(
        replies.map((x) => x.code),
        [426, 226],
        `ABOR replies: ${replies.map((x) => x.lines.join(" | ")).join(" / ")}`,
      );
    } finally {
      try {
        data.close();
      } catch {
        // closed after ABOR
      }
    }
    assert.equal((await ftp.send("NOOP")).code, 200);
    const again = await ftp.retrieve("/pre/deep/small.bin");
    assert.equal(await sha256(again.data), await sha256(small));
  });

  await t.step("ABOR before the transfer drops the prepared data connection", async () => {
    await using ftp = await site.control();
    await ftp.pasv("RETR /pre/deep/small.bin");
    assert.equal((await ftp.send("ABOR")).code, 225);
    const r = await ftp.send("RETR /pre/deep/small.bin");
    assert.equal(r.code, 425, `RETR after ABOR should need a new PASV: ${r.lines.join(" | ")}`);
    const again = await ftp.retrieve("/pre/deep/small.bin");
    assert.equal(await sha256(again.data), await sha256(small));
  });

  await t.step("a slave killed mid-download: 4xx on the control connection", async () => {
    await using ftp = await site.control();
    const pasv = await ftp.pasv("RETR /pre/big.bin");
    const data = await Deno.connect({ hostname: pasv.host, port: pasv.port });
    let received = 0;
    try {
      const r = await ftp.send("RETR /pre/big.bin");
      assert.ok(r.code === 150 || r.code === 125, r.lines.join(" | "));
      const chunk = new Uint8Array(65536);
      received += (await data.read(chunk)) ?? 0;
      await site.killSlave("s2", "SIGKILL");
      received += await deadline(readAll(data), { ms: 20_000, what: "data EOF after the kill" })
        .then((rest) => rest.length, () => 0);
    } finally {
      data.close();
    }
    assert.ok(received < BIG, "the whole file arrived although the slave was killed");
    const done = await ftp.read();
    assert.equal(
      done.code,
      426,
      `interrupted download should end with 426, got: ${done.lines.join(" | ")}`,
    );
    assert.equal((await ftp.send("NOOP")).code, 200, "the session should survive");
  });

  await t.step("the slave comes back and the file is whole", async () => {
    await site.waitSlaves(["s2"], "offline");
    await site.startSlave("s2");
    await using ftp = await site.control();
    const { data } = await ftp.retrieve("/pre/big.bin");
    assert.equal(data.length, BIG);
    assert.equal(await sha256(data), await sha256(big));
  });
});
