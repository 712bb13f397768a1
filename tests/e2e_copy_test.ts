/**
 * SITE COPY: a file is copied slave to slave (over TLS, the link's default), lands with equal
 * bytes on the second root, is recorded as held there (it still downloads when the first holder
 * is killed), and bad requests get a 4xx naming the reason.
 */
import assert from "node:assert/strict";
import {
  curl,
  CURL_PRET,
  describeRun,
  makeSite,
  randomBytes,
  sameFile,
  slavesHolding,
  tempDir,
} from "../testing/mod.ts";

Deno.test("SITE COPY copies a file slave to slave and records the new holder", async () => {
  await using site = await makeSite({
    slaves: [
      { name: "one", address: "127.0.0.2" },
      { name: "two", address: "127.0.0.3", start: false },
    ],
  });
  await using tmp = await tempDir();
  const src = `${tmp.path}/a.bin`;
  await Deno.writeFile(src, randomBytes(1_500_000));
  const up = await curl([...CURL_PRET, "--ftp-create-dirs", "-T", src, site.url("/c/a.bin")]);
  assert.ok(up.success, describeRun("upload", up) + (await site.logs(4000)));
  assert.deepEqual(await slavesHolding(site, "c/a.bin"), ["one"]);
  await site.startSlave("two");

  {
    await using ftp = await site.control();
    const r = await ftp.send("SITE COPY /c/a.bin two");
    assert.equal(r.code, 200, r.text + (await site.logs(4000)));
    assert.match(r.text, /from one to two: 1500000 bytes/);
    assert.deepEqual(await slavesHolding(site, "c/a.bin"), ["one", "two"]);
    assert.ok(await sameFile(src, `${site.slaveRoot("two")}/c/a.bin`), "same bytes on two");
    const names = [...Deno.readDirSync(`${site.slaveRoot("two")}/c`)].map((e) => e.name);
    assert.deepEqual(names, ["a.bin"], "no temporary file left");

    const again = await ftp.send("SITE COPY /c/a.bin two");
    assert.equal(again.code, 450);
    assert.match(again.text, /already holds/);
    const missing = await ftp.send("SITE COPY /c/nope.bin two");
    assert.equal(missing.code, 450);
    assert.match(missing.text, /No such file/);
    const nobody = await ftp.send("SITE COPY /c/a.bin ghost");
    assert.equal(nobody.code, 450);
    assert.match(nobody.text, /ghost is not online/);
    const usage = await ftp.send("SITE COPY /c/a.bin");
    assert.equal(usage.code, 501);
  }

  // The copy is recorded: with the first holder dead, the file downloads from the second.
  await site.killSlave("one", "SIGKILL");
  await site.waitSlaves(["one"], "offline", 30_000);
  const out = `${tmp.path}/a.out`;
  const down = await curl([...CURL_PRET, "--max-time", "20", "-o", out, site.url("/c/a.bin")]);
  assert.ok(down.success, describeRun("download from two", down) + (await site.logs(4000)));
  assert.ok(await sameFile(src, out));
});
