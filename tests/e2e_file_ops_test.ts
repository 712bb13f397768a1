/**
 * Namespace commands reach the slave's disk: MKD, RNFR/RNTO (file and directory), DELE and RMD
 * change both the listing and the file under the slave root, with the standard reply codes.
 */

import assert from "node:assert/strict";
import { exists, makeSite, randomBytes, sha256 } from "../testing/mod.ts";

Deno.test("MKD, RNFR/RNTO, DELE and RMD reach the slave's disk", async (t) => {
  await using site = await makeSite({ slaves: [{ name: "s2", address: "127.0.0.2" }] });
  await using ftp = await site.control();
  const root = site.slaveRoot("s2");
  const bytes = randomBytes(50_000);

  const nlst = async (dir: string) => {
    const pasv = await ftp.pasv(`NLST ${dir}`);
    const { data } = await ftp.transfer(pasv, `NLST ${dir}`);
    return new TextDecoder().decode(data).split(/\r?\n/).filter((l) => l !== "")
      .map((l) => l.replace(/^.*\//, "")).sort();
  };

  await t.step("MKD and upload", async () => {
    const mkd = await ftp.send("MKD /ops");
    assert.equal(mkd.code, 257, mkd.lines.join(" | "));
    assert.equal((await ftp.send("MKD /ops")).code, 550, "MKD of an existing dir");
    assert.equal((await ftp.send("MKD /ops/inner")).code, 257);
    await ftp.store("/ops/inner/f.bin", bytes);
    assert.ok(await exists(`${root}/ops/inner/f.bin`));
    assert.deepEqual(await nlst("/ops/inner"), ["f.bin"]);
  });

  await t.step("rename a file", async () => {
    assert.equal((await ftp.send("RNFR /ops/inner/f.bin")).code, 350);
    const rnto = await ftp.send("RNTO /ops/inner/g.bin");
    assert.equal(rnto.code, 250, rnto.lines.join(" | "));
    assert.deepEqual(await nlst("/ops/inner"), ["g.bin"]);
    assert.ok(!(await exists(`${root}/ops/inner/f.bin`)), "old name still on the slave's disk");
    const { data } = await ftp.retrieve("/ops/inner/g.bin");
    assert.equal(await sha256(data), await sha256(bytes));
    assert.equal((await ftp.send("RNFR /ops/inner/nope.bin")).code, 550);
  });

  await t.step("rename a directory", async () => {
    assert.equal((await ftp.send("RNFR /ops/inner")).code, 350);
    assert.equal((await ftp.send("RNTO /ops/moved")).code, 250);
    assert.deepEqual(await nlst("/ops"), ["moved"]);
    const { data } = await ftp.retrieve("/ops/moved/g.bin");
    assert.equal(await sha256(data), await sha256(bytes));
    assert.ok(await exists(`${root}/ops/moved/g.bin`), "moved file not on the slave's disk");
  });

  await t.step("names in the server's own space (.drftpd-) cannot be created", async () => {
    // The slave never inventories them: a file stored under one would vanish at the next remerge.
    const name = "/ops/moved/.drftpd-upload.x1.f.bin";
    await ftp.pasv(`STOR ${name}`);
    const stor = await ftp.send(`STOR ${name}`);
    assert.equal(stor.code, 553, stor.lines.join(" | "));
    assert.match(stor.lines[0]!, /names starting with "\.drftpd-" are the server's own/);
    assert.equal((await ftp.send("MKD /ops/.drftpd-copy.d")).code, 553);
    assert.equal((await ftp.send("RNFR /ops/moved/g.bin")).code, 350);
    assert.equal((await ftp.send("RNTO /ops/moved/.drftpd-collision.1.g.bin")).code, 553);
    assert.deepEqual(await nlst("/ops/moved"), ["g.bin"]);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(`${root}/ops/moved`))).map((e) => e.name),
      ["g.bin"],
      "nothing reached the slave's disk",
    );
  });

  await t.step("DELE and RMD", async () => {
    assert.equal((await ftp.send("RMD /ops/moved")).code, 550, "RMD of a non-empty dir");
    const dele = await ftp.send("DELE /ops/moved/g.bin");
    assert.equal(dele.code, 250, dele.lines.join(" | "));
    assert.equal((await ftp.send("DELE /ops/moved/g.bin")).code, 550);
    assert.equal((await ftp.send("SIZE /ops/moved/g.bin")).code, 550);
    // the slave deletes asynchronously at most briefly: poll the disk
    const deadline = Date.now() + 5000;
    while (await exists(`${root}/ops/moved/g.bin`)) {
      assert.ok(Date.now() < deadline, "deleted file still on the slave's disk");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal((await ftp.send("RMD /ops/moved")).code, 250);
    assert.deepEqual(await nlst("/ops"), []);
  });
});

Deno.test("MFMT sets the time in the filelist and on the slave's disk", async () => {
  await using site = await makeSite({ slaves: [{ name: "s2", address: "127.0.0.2" }] });
  await using ftp = await site.control();
  const root = site.slaveRoot("s2");
  assert.match((await ftp.send("FEAT")).lines.join("\n"), /^ MFMT$/m);
  assert.equal((await ftp.send("MKD /t d")).code, 257);
  await ftp.store("/t d/a file.bin", randomBytes(1000));

  const r = await ftp.send("MFMT 20200102030405 /t d/a file.bin");
  assert.equal(r.code, 213, r.lines.join(" | "));
  assert.equal(r.lines[0], "213 Modify=20200102030405; /t d/a file.bin");
  assert.equal((await ftp.send("MDTM /t d/a file.bin")).lines[0], "213 20200102030405");
  // the holder applied it before the reply
  const onDisk = (await Deno.stat(`${root}/t d/a file.bin`)).mtime?.getTime();
  assert.equal(onDisk, Date.UTC(2020, 0, 2, 3, 4, 5));
  const pasv = await ftp.pasv("LIST /t d");
  const listing = new TextDecoder().decode((await ftp.transfer(pasv, "LIST /t d")).data);
  assert.match(listing, / Jan {2}2 {2}2020 a file\.bin\r\n/);

  const dir = await ftp.send("MFMT 19991231235959 /t d");
  assert.equal(dir.code, 213, dir.lines.join(" | "));
  assert.equal((await ftp.send("MDTM /t d")).lines[0], "213 19991231235959");
  assert.equal(
    (await Deno.stat(`${root}/t d`)).mtime?.getTime(),
    Date.UTC(1999, 11, 31, 23, 59, 59),
  );

  for (
    const [line, code, text] of [
      ["MFMT 20201301000000 /t d/a file.bin", 501, /Invalid time "20201301000000"/],
      ["MFMT yesterday /t d/a file.bin", 501, /Invalid time "yesterday"/],
      ["MFMT 20200102030405", 501, /needs a path/],
      ["MFMT 20200102030405 /t d/nope", 550, /No such file/],
      ["MFMT 20200102030405 /", 550, /root directory/],
    ] as const
  ) {
    const bad = await ftp.send(line);
    assert.equal(bad.code, code, `${line}: ${bad.lines.join(" | ")}`);
    assert.match(bad.lines.join(" "), text, line);
  }
  assert.equal((await ftp.send("MDTM /t d/a file.bin")).lines[0], "213 20200102030405");
});
