/**
 * A slave that dies in the middle of an upload: the client gets 426, the master keeps serving,
 * the other slave is untouched, and the upload is never taken for a file: it arrived under a
 * temporary name, the file is absent while the slave is down and after it comes back, and the
 * slave removes what the crash left at its start.
 */

import assert from "node:assert/strict";
import {
  arrivingUploads,
  exists,
  makeSite,
  poll,
  randomBytes,
  sha256,
  slavesHolding,
  waitForArrival,
} from "../testing/mod.ts";

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
    // wait until the bytes are on the slave's disk (under the upload's temporary name), then
    // kill it mid-transfer
    const root = site.slaveRoot(victim);
    await waitForArrival(root, sent, () => site.logs(3000));
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

  // Back online: what the crash cut short is not taken for a file, and the slave removes it.
  await site.startSlave(victim);
  const after = await ftp.send("SIZE /partial.bin");
  assert.equal(after.code, 550, `a cut-off upload must not be listed: ${after.lines.join(" | ")}`);
  assert.ok(!await exists(`${site.slaveRoot(victim)}/partial.bin`));
  await poll(
    async () => (await arrivingUploads(site.slaveRoot(victim))).length === 0 || undefined,
    {
      describe: () => "the slave to sweep the cut-off upload",
    },
  );
});
