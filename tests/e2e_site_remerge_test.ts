/**
 * SITE REMERGE: an admin asks for a full remerge of an online slave. It finds what a partial
 * remerge cannot (a file rewritten in place in a folder whose time did not change), the slave
 * keeps serving meanwhile, and only admins may ask. A change the master makes while a remerge
 * runs is never undone by an inventory the slave scanned before it.
 */

import assert from "node:assert/strict";
import { RecordingProxy } from "../testing/recording_proxy.ts";
import { exists, FtpControl, makeSite, poll, randomBytes } from "../testing/mod.ts";

Deno.test("SITE REMERGE reconciles an online slave with its disk", async () => {
  await using site = await makeSite({ slaves: [{ name: "s1", address: "127.0.0.1" }] });
  await using ftp = await site.control();
  const root = site.slaveRoot("s1");
  assert.equal((await ftp.send("MKD /d")).code, 257);
  await ftp.store("/d/f.bin", randomBytes(1000));
  await ftp.store("/d/g.bin", randomBytes(10));

  // Behind the master's back: f.bin rewritten in place (its folder's time does not change),
  // g.bin removed, a new folder with a file.
  const dirTime = (await Deno.stat(`${root}/d`)).mtime?.getTime();
  const f = await Deno.open(`${root}/d/f.bin`, { write: true });
  await f.write(randomBytes(3000));
  f.close();
  assert.equal((await Deno.stat(`${root}/d`)).mtime?.getTime(), dirTime);
  await Deno.remove(`${root}/d/g.bin`);
  await Deno.mkdir(`${root}/new`);
  await Deno.writeFile(`${root}/new/h.bin`, randomBytes(77));

  const r = await ftp.send("SITE REMERGE s1");
  assert.equal(r.code, 200, r.lines.join(" | "));
  assert.match(r.lines[0]!, /Full remerge of s1 started/);
  const log = await poll(async () => {
    const text = await site.log("master");
    return /Slave s1 remerged: full \(asked for\) remerge/.test(text) ? text : undefined;
  }, { describe: () => "the asked-for remerge of s1 to finish" });
  assert.match(log, /started a full remerge of s1/);
  const slaves = await ftp.send("SITE SLAVES");
  assert.match(slaves.lines.join("\n"), /s1 online address=/, "remerging flag not cleared");

  assert.equal((await ftp.send("SIZE /d/f.bin")).lines[0], "213 3000");
  assert.equal((await ftp.send("SIZE /d/g.bin")).code, 550);
  assert.equal((await ftp.send("SIZE /new/h.bin")).lines[0], "213 77");
  const { data } = await ftp.retrieve("/new/h.bin"); // the slave served all along
  assert.equal(data.length, 77);

  for (
    const [line, code] of [
      ["SITE REMERGE", 501],
      ["SITE REMERGE s1 s2", 501],
      ["SITE REMERGE nope", 450],
    ] as const
  ) {
    const bad = await ftp.send(line);
    assert.equal(bad.code, code, `${line}: ${bad.lines.join(" | ")}`);
  }

  await site.addUser("bob", "bob-pass");
  await using bob = await FtpControl.login({ host: site.host, port: site.ftpPort }, {
    user: "bob",
    pass: "bob-pass",
  });
  const denied = await bob.send("SITE REMERGE s1");
  assert.equal(denied.code, 550, denied.lines.join(" | "));
  assert.match(denied.lines[0]!, /admins only/);
});

Deno.test("a file deleted while a remerge runs is not brought back by a batch scanned before", async () => {
  let linkTarget = 0;
  await using link = new RecordingProxy("127.0.0.1", 0, () => ({
    hostname: "127.0.0.1",
    port: linkTarget,
  }));
  await using site = await makeSite({
    slaves: [{
      name: "s1",
      address: "127.0.0.1",
      masterAddress: (linkPort) => {
        linkTarget = linkPort;
        return `127.0.0.1:${link.port}`;
      },
    }],
  });
  await using ftp = await site.control();
  const root = site.slaveRoot("s1");
  assert.equal((await ftp.send("MKD /d")).code, 257);
  await ftp.store("/d/x.bin", randomBytes(5));
  const inventories = async () =>
    (await site.log("s1")).split("Sent the inventory (full)").length - 1;
  const before = await inventories();

  // The slave scans (x.bin still there) and sends its inventory; the proxy holds it back.
  link.hold();
  assert.equal((await ftp.send("SITE REMERGE s1")).code, 200);
  await poll(async () => await inventories() > before || undefined, {
    describe: () => "the slave to send its inventory",
  });
  // Only now is the file deleted: in the filelist, then on the slave's disk.
  const dele = ftp.send("DELE /d/x.bin");
  await poll(async () => !(await exists(`${root}/d/x.bin`)) || undefined, {
    describe: () => "the slave to delete x.bin",
  });
  link.release(); // the stale inventory reaches the master after the delete
  assert.equal((await dele).code, 250);
  await poll(async () => /Slave s1 remerged/.test(await site.log("master")) || undefined, {
    describe: () => "the remerge to finish",
  });
  const size = await ftp.send("SIZE /d/x.bin");
  assert.equal(size.code, 550, `the filelist claims a deleted file: ${size.lines.join(" | ")}`);
});
