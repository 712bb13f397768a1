/**
 * Partial remerge: a slave that comes back lists only the directories changed on its disk since
 * its last completed remerge, and the filelist ends up exactly as its disk is: a file added in
 * one folder, a file deleted in another, a whole folder deleted (and gone from the listing), a
 * new folder, and a folder moved in from outside the root whose own subfolders carry old times.
 * A master restarted with its KV asks for a partial remerge; a master with a fresh KV for a full
 * one.
 */

import assert from "node:assert/strict";
import { type FtpControl, makeSite, poll, randomBytes, tempDir } from "../testing/mod.ts";

/** Every entry below `dir` as "path" → size (files) or "dir" (directories), via MLSD. */
async function listTree(ftp: FtpControl, dir: string): Promise<Record<string, number | "dir">> {
  const out: Record<string, number | "dir"> = {};
  const walk = async (path: string) => {
    const endpoint = await ftp.pasv(`MLSD ${path}`);
    const { data } = await ftp.transfer(endpoint, `MLSD ${path}`);
    for (const line of new TextDecoder().decode(data).split("\r\n")) {
      if (line === "") continue;
      const sep = line.indexOf("; ");
      const facts = line.slice(0, sep).toLowerCase();
      const name = line.slice(sep + 2);
      const child = `${path}/${name}`;
      if (/(^|;)type=dir(;|$)/.test(facts)) {
        out[child] = "dir";
        await walk(child);
      } else if (/(^|;)type=file(;|$)/.test(facts)) {
        out[child] = Number(/(?:^|;)size=(\d+)/.exec(facts)?.[1]);
      }
    }
  };
  await walk(dir);
  return out;
}

/** The master's "Slave s1 online: <mode> remerge" lines so far, mode only. */
async function onlineModes(log: () => Promise<string>): Promise<string[]> {
  return [...(await log()).matchAll(/Slave "?s1"? online: (partial|full)\b/g)].map((m) => m[1]!);
}

Deno.test("partial remerge: a restarted slave's disk changes show up exactly", async (t) => {
  await using outside = await tempDir("drftpd-e2e-outside-");
  // A tree that will be moved into the root while the slave is down: its subfolders must look
  // older than the slave's last remerge (2 s of slack), so it is made well before the site.
  await Deno.mkdir(`${outside.path}/moved/inner`, { recursive: true });
  await Deno.writeFile(`${outside.path}/moved/top.bin`, randomBytes(11));
  await Deno.writeFile(`${outside.path}/moved/inner/z.bin`, randomBytes(12));
  await new Promise((r) => setTimeout(r, 2_200));

  await using site = await makeSite({ slaves: [{ name: "s1", address: "127.0.0.1" }] });
  const root = site.slaveRoot("s1");
  const masterLog = () => site.log("master");
  assert.deepEqual(await onlineModes(masterLog), ["full"], "a new slave gets a full remerge");

  const files: Record<string, number> = {
    "/r/a/one.bin": 101,
    "/r/a/deep/two.bin": 102,
    "/r/b/three.bin": 103,
    "/r/b/four.bin": 104,
    "/r/gone/five.bin": 105,
    "/r/gone/sub/six.bin": 106,
    "/r/keep/seven.bin": 107,
  };
  {
    await using ftp = await site.control();
    for (const d of ["/r", "/r/a", "/r/a/deep", "/r/b", "/r/gone", "/r/gone/sub", "/r/keep"]) {
      const r = await ftp.send(`MKD ${d}`);
      assert.equal(r.code, 257, r.lines.join(" | "));
    }
    for (const [path, size] of Object.entries(files)) await ftp.store(path, randomBytes(size));
  }

  await t.step("changes made on the slave's disk while it was down", async () => {
    await site.killSlave("s1", "SIGKILL");
    await site.waitSlaves(["s1"], "offline");
    await Deno.writeFile(`${root}/r/a/added.bin`, randomBytes(201));
    await Deno.remove(`${root}/r/b/three.bin`);
    await Deno.remove(`${root}/r/gone`, { recursive: true });
    await Deno.mkdir(`${root}/r/newdir/x`, { recursive: true });
    await Deno.writeFile(`${root}/r/newdir/x/y.bin`, randomBytes(202));
    await Deno.rename(`${outside.path}/moved`, `${root}/r/moved`);
    await site.startSlave("s1");
    assert.deepEqual(await onlineModes(masterLog), ["full", "partial"], await site.logs(6000));

    await using ftp = await site.control();
    assert.deepEqual(await listTree(ftp, "/r"), {
      "/r/a": "dir",
      "/r/a/added.bin": 201,
      "/r/a/deep": "dir",
      "/r/a/deep/two.bin": 102,
      "/r/a/one.bin": 101,
      "/r/b": "dir",
      "/r/b/four.bin": 104,
      "/r/keep": "dir",
      "/r/keep/seven.bin": 107,
      "/r/moved": "dir",
      "/r/moved/inner": "dir",
      "/r/moved/inner/z.bin": 12,
      "/r/moved/top.bin": 11,
      "/r/newdir": "dir",
      "/r/newdir/x": "dir",
      "/r/newdir/x/y.bin": 202,
    });
    const { data } = await ftp.retrieve("/r/moved/inner/z.bin");
    assert.equal(data.length, 12);
    const gone = await ftp.send("SIZE /r/b/three.bin");
    assert.equal(gone.code, 550, gone.lines.join(" | "));
  });

  const expected = await (async () => {
    await using ftp = await site.control();
    return await listTree(ftp, "/r");
  })();

  await t.step("a master restarted with its KV asks for a partial remerge", async () => {
    await site.restartMaster({ signal: "SIGTERM" });
    const modes = await onlineModes(masterLog);
    assert.equal(modes.at(-1), "partial", await site.logs(6000));
    await using ftp = await site.control();
    assert.deepEqual(await listTree(ftp, "/r"), expected);
  });

  await t.step("a master with a fresh KV asks for a full remerge", async () => {
    await site.stopMaster("SIGTERM");
    const before = (await onlineModes(masterLog)).length;
    for await (const e of Deno.readDir(site.masterDataDir)) {
      if (e.name.startsWith("filelist.kv")) await Deno.remove(`${site.masterDataDir}/${e.name}`);
    }
    await site.addUser(site.user, site.pass, { admin: true });
    await site.restartMaster({ signal: "SIGTERM" });
    const modes = await poll(async () => {
      const m = await onlineModes(masterLog);
      return m.length > before ? m : undefined;
    }, { describe: () => "the slave online again" });
    assert.equal(modes.at(-1), "full", await site.logs(6000));
    await using ftp = await site.control();
    assert.deepEqual(await listTree(ftp, "/r"), expected);
  });
});
