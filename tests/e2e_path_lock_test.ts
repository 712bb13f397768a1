/**
 * Transfers and namespace changes on the same path (issue 11, point 3). While an upload runs:
 * DELE of the file (an overwrite), MKD of its name, RNFR/RMD of its folder and RNTO onto it are
 * refused with `450 … in use by a transfer`, and a second STOR of the same path is refused before
 * `150`. Each upload then ends with 226, and its file is listed, whole, on exactly one slave:
 * no 226 is ever followed by a missing or different file.
 */
import assert from "node:assert/strict";
import {
  FtpControl,
  type FtpReply,
  listTree,
  makeSite,
  randomBytes,
  sha256,
  type Site,
} from "../testing/mod.ts";

function lines(r: FtpReply): string {
  return r.lines.join(" | ");
}

function expectBusy(r: FtpReply, what: string): void {
  assert.equal(r.code, 450, `${what} during an upload: ${lines(r)}`);
  assert.match(r.text, /in use by a transfer/, lines(r));
}

/** An upload whose first half is sent: `finish()` sends the rest and returns the final reply. */
async function startUpload(
  ftp: FtpControl,
  path: string,
  bytes: Uint8Array,
): Promise<{ finish(): Promise<FtpReply> }> {
  const pasv = await ftp.pasv(`STOR ${path}`);
  const data = await Deno.connect({ hostname: pasv.host, port: pasv.port });
  const r = await ftp.send(`STOR ${path}`);
  assert.equal(r.code, 150, `STOR ${path}: ${lines(r)}`);
  const half = bytes.length >> 1;
  let off = 0;
  while (off < half) off += await data.write(bytes.subarray(off, half));
  return {
    async finish() {
      while (off < bytes.length) off += await data.write(bytes.subarray(off));
      data.close();
      return await ftp.read();
    },
  };
}

/** After a 226: the file is whole through RETR and on exactly one slave's disk. */
async function assertStored(site: Site, ftp: FtpControl, path: string, bytes: Uint8Array) {
  const { data } = await ftp.retrieve(path);
  assert.equal(await sha256(data), await sha256(bytes), `RETR ${path} after 226`);
  const copies: string[] = [];
  for (const name of site.slaveNames) {
    if ((await listTree(site.slaveRoot(name))).includes(path.slice(1))) copies.push(name);
  }
  assert.equal(copies.length, 1, `${path} on slaves: ${copies.join(", ")}`);
}

Deno.test("a transfer in progress orders DELE, MKD, RNFR/RNTO, RMD and a second STOR", async (t) => {
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.2" }, { name: "s2", address: "127.0.0.3" }],
  });
  await using a = await site.control();
  await using b = await site.control();
  const v1 = randomBytes(300_000);
  const v2 = randomBytes(2_000_000);

  await t.step("DELE during an overwriting STOR", async () => {
    await a.store("/over.bin", v1);
    const up = await startUpload(a, "/over.bin", v2);
    expectBusy(await b.send("DELE /over.bin"), "DELE");
    assert.equal((await up.finish()).code, 226);
    await assertStored(site, a, "/over.bin", v2);
  });

  await t.step("two STORs of one new name: the second is refused before 150", async () => {
    const up = await startUpload(a, "/twice.bin", v2);
    const pasv = await b.pasv("STOR /twice.bin");
    const data = await Deno.connect({ hostname: pasv.host, port: pasv.port });
    let second = await b.send("STOR /twice.bin");
    if (second.code === 150) {
      await data.write(v1);
      data.close();
      second = await b.read();
    }
    data.close();
    expectBusy(second, "a second STOR");
    assert.equal((await up.finish()).code, 226);
    await assertStored(site, a, "/twice.bin", v2);
  });

  await t.step("MKD of the name being uploaded is refused, not the upload", async () => {
    const up = await startUpload(a, "/named.bin", v2);
    expectBusy(await b.send("MKD /named.bin"), "MKD");
    assert.equal((await up.finish()).code, 226);
    await assertStored(site, a, "/named.bin", v2);
  });

  await t.step("RNFR/RMD of the folder, RNTO onto the file, during an upload", async () => {
    assert.equal((await a.send("MKD /dir")).code, 257);
    await a.store("/other.bin", v1);
    const up = await startUpload(a, "/dir/f.bin", v2);
    expectBusy(await b.send("RNFR /dir"), "RNFR of the parent");
    expectBusy(await b.send("RMD /dir"), "RMD of the parent");
    assert.equal((await b.send("RNFR /other.bin")).code, 350);
    expectBusy(await b.send("RNTO /dir/f.bin"), "RNTO onto the file");
    assert.equal((await up.finish()).code, 226);
    await assertStored(site, a, "/dir/f.bin", v2);
    // once the upload is over, the same commands work
    assert.equal((await b.send("RNFR /dir")).code, 350);
    assert.equal((await b.send("RNTO /dir2")).code, 250);
    await assertStored(site, a, "/dir2/f.bin", v2);
  });
});
