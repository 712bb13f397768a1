/**
 * curl against a master with two slaves on 127.0.0.2 and 127.0.0.3: passive transfers through
 * PRET go straight to a slave (227 names the slave), active transfers (PORT/EPRT) work, the bytes
 * land under exactly one slave root and never under the master's data dir, and a series of
 * uploads is spread over both slaves.
 */

import assert from "node:assert/strict";
import {
  curl,
  CURL_BASE,
  CURL_PRET,
  describeRun,
  findByName,
  makeSite,
  pasvHostsFromCurlTrace,
  randomBytes,
  sameFile,
  slavesHolding,
  tempDir,
} from "../testing/mod.ts";

Deno.test("curl: PRET passive and active transfers go to the slaves", async (t) => {
  await using site = await makeSite({
    slaves: [{ name: "s2", address: "127.0.0.2" }, { name: "s3", address: "127.0.0.3" }],
    // 8 parallel sessions of one user from one address may all hold a prepared PASV at once:
    // the quota per address and per user is a quarter of the master's range (here 10)
    passivePorts: 40,
  });
  await using tmp = await tempDir();
  const slaveAddresses = ["127.0.0.2", "127.0.0.3"];

  await t.step("passive upload and download of 3 MB through PRET", async () => {
    const src = `${tmp.path}/big.bin`;
    await Deno.writeFile(src, randomBytes(3 * 1024 * 1024));

    const up = await curl([
      ...CURL_PRET,
      "-v",
      "--ftp-create-dirs",
      "-T",
      src,
      site.url("/pret/big.bin"),
    ]);
    assert.ok(up.success, describeRun("curl upload", up) + (await site.logs(4000)));
    const upPasv = pasvHostsFromCurlTrace(up.stderr);
    assert.ok(upPasv.length > 0, `no 227 reply in the upload trace:\n${up.stderr}`);
    for (const p of upPasv) {
      assert.ok(slaveAddresses.includes(p.host), `upload 227 named ${p.host}, not a slave`);
    }

    const out = `${tmp.path}/big.out`;
    const down = await curl([...CURL_PRET, "-v", "-o", out, site.url("/pret/big.bin")]);
    assert.ok(down.success, describeRun("curl download", down) + (await site.logs(4000)));
    assert.ok(await sameFile(src, out), "downloaded bytes differ from the uploaded ones");
    const downPasv = pasvHostsFromCurlTrace(down.stderr);
    assert.ok(downPasv.length > 0, `no 227 reply in the download trace:\n${down.stderr}`);
    for (const p of downPasv) {
      assert.ok(slaveAddresses.includes(p.host), `download 227 named ${p.host}, not a slave`);
    }

    const holders = await slavesHolding(site, "pret/big.bin");
    assert.equal(holders.length, 1, `expected exactly one slave to hold the file: ${holders}`);
    assert.ok(
      await sameFile(src, `${site.slaveRoot(holders[0]!)}/pret/big.bin`),
      "the file on the slave's disk differs from the upload",
    );
    // the 227 of the download names the slave that holds it
    assert.equal(downPasv.at(-1)!.host, site.slaveAddress(holders[0]!));
    assert.deepEqual(await findByName(site.masterDataDir, "big.bin"), []);
  });

  await t.step("active upload and download (curl -P 127.0.0.1)", async () => {
    const src = `${tmp.path}/active.bin`;
    await Deno.writeFile(src, randomBytes(256 * 1024 + 17));
    const up = await curl([
      ...CURL_BASE,
      "-P",
      "127.0.0.1",
      "--ftp-create-dirs",
      "-T",
      src,
      site.url("/act/active.bin"),
    ]);
    assert.ok(up.success, describeRun("curl active upload", up) + (await site.logs(4000)));

    const out = `${tmp.path}/active.out`;
    const down = await curl([
      ...CURL_BASE,
      "-P",
      "127.0.0.1",
      "-o",
      out,
      site.url("/act/active.bin"),
    ]);
    assert.ok(down.success, describeRun("curl active download", down) + (await site.logs(4000)));
    assert.ok(await sameFile(src, out), "actively downloaded bytes differ");

    const holders = await slavesHolding(site, "act/active.bin");
    assert.equal(holders.length, 1, `expected exactly one slave to hold the file: ${holders}`);
    assert.deepEqual(await findByName(site.masterDataDir, "active.bin"), []);
  });

  await t.step("active mode with PORT only (EPRT disabled)", async () => {
    const src = `${tmp.path}/port.bin`;
    await Deno.writeFile(src, randomBytes(70_000));
    const up = await curl([
      ...CURL_BASE,
      "-P",
      "127.0.0.1",
      "--disable-eprt",
      "-T",
      src,
      site.url("/act/port.bin"),
    ]);
    assert.ok(up.success, describeRun("curl PORT upload", up));
    const out = `${tmp.path}/port.out`;
    const down = await curl([
      ...CURL_BASE,
      "-P",
      "127.0.0.1",
      "--disable-eprt",
      "-o",
      out,
      site.url("/act/port.bin"),
    ]);
    assert.ok(down.success, describeRun("curl PORT download", down));
    assert.ok(await sameFile(src, out), "PORT-mode downloaded bytes differ");
  });

  await t.step("8 parallel uploads then 8 parallel downloads", async () => {
    const idx = [...Array(8).keys()];
    await Promise.all(
      idx.map((i) => Deno.writeFile(`${tmp.path}/par-${i}.bin`, randomBytes(400_000 + i))),
    );
    const ups = await Promise.all(
      idx.map((i) =>
        curl([
          ...CURL_PRET,
          "--ftp-create-dirs",
          "-T",
          `${tmp.path}/par-${i}.bin`,
          site.url(`/par/p${i}.bin`),
        ])
      ),
    );
    for (const [i, r] of ups.entries()) {
      assert.ok(r.success, describeRun(`parallel upload ${i}`, r) + (await site.logs(4000)));
    }
    const downs = await Promise.all(
      idx.map((i) =>
        curl([...CURL_PRET, "-o", `${tmp.path}/par-${i}.out`, site.url(`/par/p${i}.bin`)])
      ),
    );
    for (const [i, r] of downs.entries()) {
      assert.ok(r.success, describeRun(`parallel download ${i}`, r) + (await site.logs(4000)));
      assert.ok(
        await sameFile(`${tmp.path}/par-${i}.bin`, `${tmp.path}/par-${i}.out`),
        `p${i}.bin differs`,
      );
    }
  });

  await t.step("20 uploads are spread over both slaves", async () => {
    const files: string[] = [];
    for (let i = 0; i < 20; i++) {
      const src = `${tmp.path}/many-${i}.bin`;
      await Deno.writeFile(src, randomBytes(20_000 + i * 1000));
      const up = await curl([
        ...CURL_PRET,
        "--ftp-create-dirs",
        "-T",
        src,
        site.url(`/many/f${i}.bin`),
      ]);
      assert.ok(up.success, describeRun(`curl upload ${i}`, up) + (await site.logs(4000)));
      files.push(`many/f${i}.bin`);
    }
    const count: Record<string, number> = { s2: 0, s3: 0 };
    for (const [i, f] of files.entries()) {
      const holders = await slavesHolding(site, f);
      assert.equal(holders.length, 1, `${f} is held by ${holders.length} slaves: ${holders}`);
      count[holders[0]!]! += 1;
      assert.ok(await sameFile(`${tmp.path}/many-${i}.bin`, `${site.slaveRoot(holders[0]!)}/${f}`));
    }
    assert.ok(count.s2! > 0 && count.s3! > 0, `uploads not spread: ${JSON.stringify(count)}`);

    // and each comes back intact through its own slave
    for (const i of [0, 7, 19]) {
      const out = `${tmp.path}/many-${i}.out`;
      const down = await curl([...CURL_PRET, "-o", out, site.url(`/many/f${i}.bin`)]);
      assert.ok(down.success, describeRun(`curl download ${i}`, down));
      assert.ok(await sameFile(`${tmp.path}/many-${i}.bin`, out), `f${i}.bin differs`);
    }
  });
});
