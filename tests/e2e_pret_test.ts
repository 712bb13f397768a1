/**
 * PRET on a raw control connection, asserting exact reply codes and where data goes:
 * - a slave on the control connection's own address (127.0.0.1): EPSV after PRET works and the
 *   port is in that slave's passive range; PRET survives TYPE/SIZE/REST; PRET LIST is served by
 *   the master; PRET RETR of a missing file is 550;
 * - a slave on 127.0.0.2 with `pasv_without_pret = "reject"`: EPSV after PRET fails, the PASV
 *   that follows (without repeating PRET) still names the slave; PASV/EPSV without PRET get a
 *   5xx naming PRET; relayed and direct data never lands in the master's data dir.
 */

import assert from "node:assert/strict";
import { findByName, makeSite, randomBytes, sha256 } from "../testing/mod.ts";

function inRange(port: number, range: { from: number; to: number }): boolean {
  return port >= range.from && port <= range.to;
}

Deno.test("PRET with a slave on the control address: EPSV, state across commands", async (t) => {
  await using site = await makeSite({ slaves: [{ name: "local", address: "127.0.0.1" }] });
  await using ftp = await site.control();
  const range = site.slavePassiveRange("local");
  const bytes = randomBytes(200_000);

  await t.step("PRET STOR + EPSV uploads to the slave", async () => {
    assert.equal((await ftp.send("MKD /p")).code, 257);
    const pret = await ftp.send("PRET STOR /p/e.bin");
    assert.equal(pret.code, 200, pret.lines.join(" | "));
    const { port } = await ftp.epsv();
    assert.ok(inRange(port, range), `EPSV port ${port} not in the slave's range`);
    await ftp.transfer({ host: "127.0.0.1", port }, "STOR /p/e.bin", { upload: bytes });
    const onDisk = await Deno.readFile(`${site.slaveRoot("local")}/p/e.bin`);
    assert.equal(await sha256(onDisk), await sha256(bytes));
  });

  await t.step("PRET RETR + EPSV downloads from the slave", async () => {
    assert.equal((await ftp.send("PRET RETR /p/e.bin")).code, 200);
    const { port } = await ftp.epsv();
    assert.ok(inRange(port, range), `EPSV port ${port} not in the slave's range`);
    const { data } = await ftp.transfer({ host: "127.0.0.1", port }, "RETR /p/e.bin");
    assert.equal(await sha256(data), await sha256(bytes));
  });

  await t.step("PRET state survives TYPE, SIZE and REST", async () => {
    assert.equal((await ftp.send("PRET RETR /p/e.bin")).code, 200);
    assert.equal((await ftp.send("TYPE I")).code, 200);
    const size = await ftp.send("SIZE /p/e.bin");
    assert.deepEqual([size.code, size.text.trim()], [213, String(bytes.length)]);
    const pasv = await ftp.pasv();
    assert.equal(pasv.host, "127.0.0.1");
    assert.ok(inRange(pasv.port, range), `PASV port ${pasv.port} not in the slave's range`);
    assert.equal((await ftp.send("REST 100")).code, 350);
    const { data } = await ftp.transfer(pasv, "RETR /p/e.bin");
    assert.equal(await sha256(data), await sha256(bytes.subarray(100)));
  });

  await t.step("PRET LIST is served by the master", async () => {
    const pasv = await ftp.pasv("LIST /p");
    assert.ok(
      inRange(pasv.port, site.masterPassiveRange),
      `listing PASV port ${pasv.port} should be the master's (${
        JSON.stringify(site.masterPassiveRange)
      })`,
    );
    const { data } = await ftp.transfer(pasv, "LIST /p");
    assert.match(new TextDecoder().decode(data), / e\.bin\r?\n/);
  });

  await t.step("PRET RETR of a missing file is 550", async () => {
    const r = await ftp.send("PRET RETR /p/missing.bin");
    assert.equal(r.code, 550, r.lines.join(" | "));
  });
});

Deno.test("PRET with a slave on another address, PASV without PRET rejected", async (t) => {
  await using site = await makeSite({
    slaves: [{ name: "far", address: "127.0.0.2" }],
    pasvWithoutPret: "reject",
  });
  await using ftp = await site.control();
  const bytes = randomBytes(123_456);
  const up = await ftp.store("/far.bin", bytes);
  assert.equal(up.host, "127.0.0.2");
  assert.ok(inRange(up.port, site.slavePassiveRange("far")));

  await t.step("EPSV after PRET fails; PASV then names the slave without a new PRET", async () => {
    assert.equal((await ftp.send("PRET RETR /far.bin")).code, 200);
    const epsv = await ftp.send("EPSV");
    assert.ok(epsv.code >= 400 && epsv.code < 600, `EPSV should fail: ${epsv.lines.join(" | ")}`);
    const pasv = await ftp.pasv();
    assert.equal(pasv.host, "127.0.0.2");
    const { data } = await ftp.transfer(pasv, "RETR /far.bin");
    assert.equal(await sha256(data), await sha256(bytes));
  });

  await t.step("PASV and EPSV without PRET get a 5xx naming PRET", async () => {
    for (const cmd of ["PASV", "EPSV"]) {
      const r = await ftp.send(cmd);
      assert.ok(r.code >= 500 && r.code < 600, `${cmd}: ${r.lines.join(" | ")}`);
      assert.match(r.text, /PRET/, `${cmd}: ${r.lines.join(" | ")}`);
    }
  });

  await t.step("nothing of the file is stored on the master", async () => {
    assert.deepEqual(await findByName(site.masterDataDir, "far.bin"), []);
  });
});
