/**
 * The filelist survives a master restart (SIGTERM, start again), the slaves reconnect by
 * themselves and come back online, and downloads work afterwards.
 */

import assert from "node:assert/strict";
import {
  curl,
  CURL_PRET,
  describeRun,
  makeSite,
  randomBytes,
  sameFile,
  tempDir,
} from "../testing/mod.ts";

Deno.test("master restart: filelist intact, slaves reconnect, downloads work", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s2", address: "127.0.0.2" }, { name: "s3", address: "127.0.0.3" }],
  });
  await using tmp = await tempDir();

  const names = ["one.bin", "two.bin", "three.bin", "four.bin"];
  for (const [i, name] of names.entries()) {
    const src = `${tmp.path}/${name}`;
    await Deno.writeFile(src, randomBytes(50_000 + i * 4321));
    const dir = i % 2 === 0 ? "/keep" : "/keep/deeper";
    const up = await curl([
      ...CURL_PRET,
      "--ftp-create-dirs",
      "-T",
      src,
      site.url(`${dir}/${name}`),
    ]);
    assert.ok(up.success, describeRun(`upload ${name}`, up) + (await site.logs(4000)));
  }

  const listing = async (path: string) => {
    const r = await curl([...CURL_PRET, "-l", site.url(path)]);
    assert.ok(r.success, describeRun(`NLST ${path}`, r) + (await site.logs(4000)));
    return r.stdout.split(/\r?\n/).filter((l) => l !== "").map((l) => l.replace(/^.*\//, ""))
      .sort();
  };
  const before = { top: await listing("/keep/"), deeper: await listing("/keep/deeper/") };
  assert.deepEqual(before.top, ["deeper", "one.bin", "three.bin"]);
  assert.deepEqual(before.deeper, ["four.bin", "two.bin"]);

  // SIGTERM, start again; restartMaster waits for FTP and for both slaves to be online again,
  // which they must manage on their own (nobody restarts them)
  const exit = await site.restartMaster({ signal: "SIGTERM", waitSlaves: false });
  assert.deepEqual(
    [exit?.code, exit?.signal],
    [0, null],
    `the master should exit cleanly on SIGTERM\n${await site.log("master")}`,
  );
  await site.waitSlaves(["s2", "s3"], "online", 45_000);

  assert.deepEqual(await listing("/keep/"), before.top, "top listing changed across restart");
  assert.deepEqual(await listing("/keep/deeper/"), before.deeper, "deeper listing changed");

  for (const [i, name] of names.entries()) {
    const dir = i % 2 === 0 ? "/keep" : "/keep/deeper";
    const out = `${tmp.path}/${name}.out`;
    const down = await curl([...CURL_PRET, "-o", out, site.url(`${dir}/${name}`)]);
    assert.ok(down.success, describeRun(`download ${name}`, down) + (await site.logs(4000)));
    assert.ok(await sameFile(`${tmp.path}/${name}`, out), `${name} differs after restart`);
  }

  // and the restarted master still takes uploads
  const src = `${tmp.path}/after.bin`;
  await Deno.writeFile(src, randomBytes(33_333));
  const up = await curl([...CURL_PRET, "-T", src, site.url("/keep/after.bin")]);
  assert.ok(up.success, describeRun("upload after restart", up));
  const out = `${tmp.path}/after.out`;
  const down = await curl([...CURL_PRET, "-o", out, site.url("/keep/after.bin")]);
  assert.ok(down.success, describeRun("download after restart", down));
  assert.ok(await sameFile(src, out));
});
