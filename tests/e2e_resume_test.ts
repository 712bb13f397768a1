/**
 * REST: a resumed download (curl -C 1000, and raw PRET/PASV/REST/RETR) returns the right tail,
 * and a resumed upload (curl --ftp-pret -C - -T, which sends PRET STOR then SIZE and APPE)
 * completes a partial file so that it downloads identical to the full one.
 */

import assert from "node:assert/strict";
import {
  crc32Hex,
  curl,
  CURL_PRET,
  describeRun,
  makeSite,
  randomBytes,
  sameFile,
  sha256,
  slavesHolding,
  tempDir,
} from "../testing/mod.ts";

Deno.test("resume: REST downloads and APPE uploads", async (t) => {
  await using site = await makeSite({
    slaves: [{ name: "s2", address: "127.0.0.2" }, { name: "s3", address: "127.0.0.3" }],
  });
  await using tmp = await tempDir();
  const full = randomBytes(600_000 + 123);
  const fullPath = `${tmp.path}/full.bin`;
  await Deno.writeFile(fullPath, full);

  const up = await curl([
    ...CURL_PRET,
    "--ftp-create-dirs",
    "-T",
    fullPath,
    site.url("/r/full.bin"),
  ]);
  assert.ok(up.success, describeRun("upload", up) + (await site.logs(4000)));

  await t.step("curl -C 1000 downloads the tail", async () => {
    const out = `${tmp.path}/tail.out`;
    const r = await curl([...CURL_PRET, "-C", "1000", "-o", out, site.url("/r/full.bin")]);
    assert.ok(r.success, describeRun("curl -C 1000", r));
    const got = await Deno.readFile(out);
    assert.equal(got.length, full.length - 1000);
    assert.equal(await sha256(got), await sha256(full.subarray(1000)), "tail bytes differ");
  });

  await t.step("PRET RETR, PASV, REST 1000, RETR on a raw control connection", async () => {
    await using ftp = await site.control();
    const { data, host } = await ftp.retrieve("/r/full.bin", 1000);
    const holders = await slavesHolding(site, "r/full.bin");
    assert.equal(holders.length, 1);
    assert.equal(
      host,
      site.slaveAddress(holders[0]!),
      "227 should name the slave holding the file",
    );
    assert.equal(data.length, full.length - 1000);
    assert.equal(await sha256(data), await sha256(full.subarray(1000)));
    // REST applies to one transfer only: the next RETR starts again at 0
    const whole = await ftp.retrieve("/r/full.bin");
    assert.equal(await sha256(whole.data), await sha256(full));
  });

  await t.step("curl --ftp-pret -C - -T resumes a partial upload", async () => {
    const halfPath = `${tmp.path}/half.bin`;
    await Deno.writeFile(halfPath, full.subarray(0, Math.floor(full.length / 2)));
    const first = await curl([...CURL_PRET, "-T", halfPath, site.url("/r/resumed.bin")]);
    assert.ok(first.success, describeRun("upload half", first));

    const resume = await curl([
      ...CURL_PRET,
      "-v",
      "-C",
      "-",
      "-T",
      fullPath,
      site.url("/r/resumed.bin"),
    ]);
    assert.ok(resume.success, describeRun("resume upload", resume) + (await site.logs(4000)));
    assert.match(resume.stderr, /> APPE /, "curl should have resumed with APPE");

    const out = `${tmp.path}/resumed.out`;
    const down = await curl([...CURL_PRET, "-o", out, site.url("/r/resumed.bin")]);
    assert.ok(down.success, describeRun("download resumed", down));
    assert.ok(await sameFile(fullPath, out), "resumed upload does not match the full file");

    const holders = await slavesHolding(site, "r/resumed.bin");
    assert.equal(holders.length, 1, `resumed file held by ${holders.length} slaves: ${holders}`);
    assert.ok(await sameFile(fullPath, `${site.slaveRoot(holders[0]!)}/r/resumed.bin`));

    await using ftp = await site.control();
    const size = await ftp.send("SIZE /r/resumed.bin");
    assert.deepEqual([size.code, size.text.trim()], [213, String(full.length)]);
  });

  await t.step("REST then STOR resumes an upload (the way lftp resumes)", async () => {
    await using ftp = await site.control();
    const half = Math.floor(full.length / 3);
    await ftp.store("/r/rest-stor.bin", full.subarray(0, half));
    const endpoint = await ftp.pasv("STOR /r/rest-stor.bin");
    assert.equal((await ftp.send(`REST ${half}`)).code, 350);
    await ftp.transfer(endpoint, "STOR /r/rest-stor.bin", { upload: full.subarray(half) });
    const size = await ftp.send("SIZE /r/rest-stor.bin");
    assert.deepEqual([size.code, size.text.trim()], [213, String(full.length)]);
    const { data } = await ftp.retrieve("/r/rest-stor.bin");
    assert.equal(await sha256(data), await sha256(full), "REST+STOR result differs");
    const crc = await ftp.send("XCRC /r/rest-stor.bin");
    assert.equal(crc.text.trim().toLowerCase(), crc32Hex(full), "XCRC after a resumed upload");
  });
});
