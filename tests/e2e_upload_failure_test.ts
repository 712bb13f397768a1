/**
 * A slave that dies in the middle of an upload: the client gets 426, the master keeps serving,
 * the other slave is untouched, and the filelist never claims the upload as complete: the file
 * is absent until the slave comes back, then listed with the size really on its disk.
 */

import assert from "node:assert/strict";
import { makeSite, randomBytes, sha256, slavesHolding } from "../testing/mod.ts";

Deno.test("a slave killed mid-upload: 426, nothing recorded as complete", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s2", address: "127.0.0.2" }, { name: "s3", address: "127.0.0.3" }],
  });
  await using ftp = await site.control();
  const other = randomBytes(100_000);
  await ftp.store("/other.bin", other);
  const otherHolder = (await slavesHolding(site, "other.bin"))[0]!;
  const victim = site.slaveNames.find((n) => n !== otherHolder)!;

  // The next upload goes to the slave that does not hold other.bin (least recently picked).
  const pasv = await ftp.pasv("STOR /partial.bin");
  assert.equal(pasv.host, site.slaveAddress(victim), "upload should go to the other slave");
  const data = await Deno.connect({ hostname: pasv.host, port: pasv.port });
  const sent = 4 * 1024 * 1024;
  try {
    const r = await ftp.send("STOR /partial.bin");
    assert.equal(r.code, 150, r.lines.join(" | "));
    const chunk = randomBytes(sent);
    let off = 0;
    while (off < chunk.length) off += await data.write(chunk.subarray(off));
    // wait until the bytes are on the slave's disk, then kill it mid-transfer
    const file = `${site.slaveRoot(victim)}/partial.bin`;
    for (let i = 0; i < 200; i++) {
      const st = await Deno.stat(file).catch(() => null);
      if (st && st.size === sent) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    await site.killSlave(victim, "SIGKILL");
    const done = await ftp.read();
    assert.equal(done.code, 426, `expected 426, got: ${done.lines.join(" | ")}`);
  } finally {
    data.close();
  }
  assert.equal((await ftp.send("NOOP")).code, 200, "the session should survive");
  const size = await ftp.send("SIZE /partial.bin");
  assert.equal(
    size.code,
    550,
    `an interrupted upload must not be listed: ${size.lines.join(" | ")}`,
  );

  // The other slave is untouched.
  const back = await ftp.retrieve("/other.bin");
  assert.equal(await sha256(back.data), await sha256(other));

  // Back online: the partial file is listed with its real size.
  await site.startSlave(victim);
  const onDisk = (await Deno.stat(`${site.slaveRoot(victim)}/partial.bin`)).size;
  const after = await ftp.send("SIZE /partial.bin");
  assert.deepEqual([after.code, after.text.trim()], [213, String(onDisk)]);
});
