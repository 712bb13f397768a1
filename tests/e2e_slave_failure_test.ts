/**
 * A slave killed with SIGKILL: its files cannot be downloaded (curl fails, the FTP reply is a
 * 4xx/5xx giving the reason) while the other slave's files still can; started again, its files
 * come back, and a file deleted from its disk while it was down is gone from the listing.
 *
 * Placement is made deterministic by starting the second slave only after the first one's
 * files are uploaded, and uploading the second one's file while the first is down.
 */

import assert from "node:assert/strict";
import {
  curl,
  CURL_PRET,
  describeRun,
  type FtpReply,
  makeSite,
  randomBytes,
  sameFile,
  slavesHolding,
  tempDir,
} from "../testing/mod.ts";

Deno.test("slave killed: its files unavailable, others fine, back after restart", async (t) => {
  await using site = await makeSite({
    slaves: [
      { name: "first", address: "127.0.0.2" },
      { name: "second", address: "127.0.0.3", start: false },
    ],
  });
  await using tmp = await tempDir();

  const put = async (name: string, size: number) => {
    const src = `${tmp.path}/${name}`;
    await Deno.writeFile(src, randomBytes(size));
    const up = await curl([...CURL_PRET, "--ftp-create-dirs", "-T", src, site.url(`/sf/${name}`)]);
    assert.ok(up.success, describeRun(`upload ${name}`, up) + (await site.logs(4000)));
  };
  const get = async (name: string) => {
    const out = `${tmp.path}/${name}.out`;
    await Deno.remove(out).catch(() => {});
    const r = await curl([...CURL_PRET, "--max-time", "20", "-o", out, site.url(`/sf/${name}`)]);
    return { r, out };
  };
  const nlst = async () => {
    const r = await curl([...CURL_PRET, "-l", site.url("/sf/")]);
    assert.ok(r.success, describeRun("NLST /sf/", r));
    return r.stdout.split(/\r?\n/).filter((l) => l !== "").map((l) => l.replace(/^.*\//, ""))
      .sort();
  };

  await put("a.bin", 100_000);
  await put("doomed.bin", 5_000);
  assert.deepEqual(await slavesHolding(site, "sf/a.bin"), ["first"]);
  assert.deepEqual(await slavesHolding(site, "sf/doomed.bin"), ["first"]);

  await site.startSlave("second");
  await site.killSlave("first", "SIGKILL");
  await site.waitSlaves(["first"], "offline", 30_000);
  await put("b.bin", 80_000);
  assert.deepEqual(await slavesHolding(site, "sf/b.bin"), ["second"]);

  await t.step("the dead slave's file cannot be downloaded", async () => {
    const { r } = await get("a.bin");
    assert.ok(!r.success, `download from a dead slave should fail:\n${describeRun("curl", r)}`);
    assert.ok(!r.timedOut, "curl should fail promptly, not hang");

    // the same on a raw control connection: a 4xx/5xx that says why
    await using ftp = await site.control();
    let refusal: FtpReply | undefined;
    for (const cmd of ["PRET RETR /sf/a.bin", "PASV", "RETR /sf/a.bin"]) {
      const reply = await ftp.send(cmd);
      if (reply.code >= 400) {
        refusal = reply;
        break;
      }
      if (cmd === "RETR /sf/a.bin") {
        const done = await ftp.read();
        refusal = done.code >= 400 ? done : undefined;
      }
    }
    assert.ok(refusal, "no 4xx/5xx reply for a file on a dead slave");
    assert.ok(refusal.code >= 400 && refusal.code < 600);
    assert.match(
      refusal.text,
      /slave|offline|online|unavailable|not available|no .*available/i,
      `the refusal should name the reason: ${refusal.lines.join(" | ")}`,
    );
  });

  await t.step("the other slave's file still downloads", async () => {
    const { r, out } = await get("b.bin");
    assert.ok(r.success, describeRun("download b.bin", r) + (await site.logs(4000)));
    assert.ok(await sameFile(`${tmp.path}/b.bin`, out));
  });

  await t.step("restarted, its files return; a file deleted meanwhile is gone", async () => {
    await Deno.remove(`${site.slaveRoot("first")}/sf/doomed.bin`);
    await site.startSlave("first");

    const { r, out } = await get("a.bin");
    assert.ok(r.success, describeRun("download a.bin after restart", r) + (await site.logs(4000)));
    assert.ok(await sameFile(`${tmp.path}/a.bin`, out));

    assert.deepEqual(
      await nlst(),
      ["a.bin", "b.bin"],
      "doomed.bin should be gone from the listing",
    );
    await using ftp = await site.control();
    const size = await ftp.send("SIZE /sf/doomed.bin");
    assert.equal(size.code, 550, size.lines.join(" | "));
  });
});
