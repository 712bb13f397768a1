/**
 * Filelist commands over an in-memory slave. XCRC writes the CRC back only if the file's record
 * did not change while the slave computed it.
 */
import assert from "node:assert/strict";
import type { FileRecord } from "../filelist/types.ts";
import { MasterDouble } from "./_session_double.ts";

const OLD: FileRecord = {
  size: 10,
  mtime: 1,
  owner: "alice",
  group: "users",
  crc32: null,
  slaves: ["s1"],
  xferMs: 0,
};

Deno.test("XCRC: an upload finishing while the slave computes is not overwritten", async () => {
  await using m = await MasterDouble.create();
  const s1 = await m.addSlave("s1");
  await m.addSlave("s2");
  await m.filelist.putFile("/f.bin", OLD);
  s1.answer = async (req) => {
    if (req.type !== "checksum") return {};
    // an upload to s2 completes meanwhile and records the new file with its CRC
    await m.filelist.putFile("/f.bin", { ...OLD, size: 20, crc32: 0xdeadbeef, slaves: ["s2"] });
    return { crc32: 0x1234, size: 10 };
  };
  const { client } = await m.connect("alice");
  const r = await client.send("XCRC /f.bin");
  assert.equal(r.code, 250);
  assert.equal(r.lines[0], "DEADBEEF", "the answer is the new file's CRC");
  const now = await m.filelist.get("/f.bin");
  assert.equal(now?.kind, "file");
  assert.deepEqual(
    now?.kind === "file" ? [now.size, now.slaves, now.crc32] : null,
    [20, ["s2"], 0xdeadbeef],
  );
});

Deno.test("XCRC: a file rewritten meanwhile without a CRC is computed again", async () => {
  await using m = await MasterDouble.create();
  const s1 = await m.addSlave("s1");
  await m.filelist.putFile("/f.bin", OLD);
  let calls = 0;
  s1.answer = async (req) => {
    if (req.type !== "checksum") return {};
    if (++calls === 1) {
      await m.filelist.putFile("/f.bin", { ...OLD, size: 20 }); // a resumed upload: no CRC
      return { crc32: 0x1111, size: 10 };
    }
    return { crc32: 0x2222, size: 20 };
  };
  const { client } = await m.connect("alice");
  assert.equal((await client.send("XCRC /f.bin")).lines[0], "00002222");
  assert.equal(calls, 2);
  const now = await m.filelist.get("/f.bin");
  assert.deepEqual(now?.kind === "file" ? [now.size, now.crc32] : null, [20, 0x2222]);
  assert.equal((await client.send("XCRC /f.bin")).lines[0], "00002222", "remembered");
  assert.equal(calls, 2);
});

Deno.test("XCRC: a file that keeps changing gives up with 450", async () => {
  await using m = await MasterDouble.create();
  const s1 = await m.addSlave("s1");
  await m.filelist.putFile("/f.bin", OLD);
  let size = 10;
  s1.answer = async (req) => {
    if (req.type !== "checksum") return {};
    const was = size;
    await m.filelist.putFile("/f.bin", { ...OLD, size: ++size });
    return { crc32: 1, size: was };
  };
  const { client } = await m.connect("alice");
  const r = await client.send("XCRC /f.bin");
  assert.equal(r.code, 450, r.lines.join(" | "));
  assert.equal(s1.of("checksum").length, 3);
});
