/**
 * Both data engines (`[slave] data_engine = "native" | "zero_copy"`) move a 64 MiB file with the
 * same bytes and CRC32 through every path a transfer can take: whole RETR and STOR, REST
 * downloads and uploads, APPE, ABOR in the middle of a download and of an upload, a client that
 * stops reading, and the slave killed in the middle of a download and of an upload (which is
 * never taken for the file).
 *
 * `DRFTPD_DATA_ENGINE` (which overrides the config) is honoured: with it set, both sites run that
 * engine, and the log check expects it.
 */

import assert from "node:assert/strict";
import {
  aborReplies,
  arrivingUploads,
  crc32Hex,
  exists,
  type FtpControl,
  makeSite,
  poll,
  randomBytes,
  readAll,
  waitForArrival,
} from "../testing/mod.ts";
import { writeAll } from "../shared/bytes.ts";
import { deadline } from "../shared/timers.ts";

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const ENGINES = ["native", "zero_copy"] as const;

for (const engine of ENGINES) {
  const expected = Deno.env.get("DRFTPD_DATA_ENGINE") || engine;

  Deno.test(`data engine ${engine}: 64 MiB with REST, APPE, ABOR, a stalled reader, a slave killed`, async (t) => {
    await using site = await makeSite({
      slaves: [{ name: "s1", address: "127.0.0.1", extra: `data_engine = "${engine}"` }],
    });
    const root = site.slaveRoot("s1");
    const src = randomBytes(SIZE);
    const srcCrc = crc32Hex(src);
    await using ftp = await site.control();

    await t.step("STOR then RETR: same bytes and CRC32", async () => {
      await ftp.store("/big.bin", src);
      const onDisk = await Deno.readFile(`${root}/big.bin`);
      assert.equal(onDisk.length, SIZE);
      assert.equal(crc32Hex(onDisk), srcCrc);
      const { data } = await ftp.retrieve("/big.bin");
      assert.equal(data.length, SIZE);
      assert.equal(crc32Hex(data), srcCrc);
      const log = await site.log("s1");
      // The CRC32 the engine computed while receiving is the one the master recorded.
      const xcrc = await ftp.send("XCRC /big.bin");
      assert.equal(xcrc.code, 250, xcrc.text);
      assert.match(xcrc.text, new RegExp(`\\b${srcCrc}\\b`, "i"));
      // zero_copy receives through the native path (see slave/zero_copy.ts).
      const how = expected === "zero_copy" ? ["sendfile", "native"] : ["native", "native"];
      for (const path of how) {
        assert.match(log, new RegExp(`moved by the ${expected} engine: ${path}`), log.slice(-3000));
      }
    });

    await t.step("REST downloads send the tail from the offset", async () => {
      for (const rest of [1, 12_345, SIZE - 4097]) {
        const { data } = await ftp.retrieve("/big.bin", rest);
        assert.equal(data.length, SIZE - rest);
        assert.equal(crc32Hex(data), crc32Hex(src.subarray(rest)), `REST ${rest}`);
      }
    });

    await t.step("REST + STOR resumes an upload; APPE appends", async () => {
      const half = 20 * MiB + 13;
      await ftp.store("/resumed.bin", src.subarray(0, half));
      const endpoint = await ftp.pasv("STOR /resumed.bin");
      assert.equal((await ftp.send(`REST ${half}`)).code, 350);
      await ftp.transfer(endpoint, "STOR /resumed.bin", { upload: src.subarray(half) });
      assert.equal(crc32Hex(await Deno.readFile(`${root}/resumed.bin`)), srcCrc);

      await ftp.store("/appended.bin", src.subarray(0, half));
      const appe = await ftp.pasv("APPE /appended.bin");
      await ftp.transfer(appe, "APPE /appended.bin", { upload: src.subarray(half) });
      assert.equal(crc32Hex(await Deno.readFile(`${root}/appended.bin`)), srcCrc);
      const size = await ftp.send("SIZE /appended.bin");
      assert.deepEqual([size.code, size.text.trim()], [213, String(SIZE)]);
    });

    await t.step("ABOR in the middle of a download, then the session goes on", async () => {
      const data = await startRetr(ftp, "/big.bin");
      try {
        assert.notEqual(await data.read(new Uint8Array(65536)), null);
        await ftp.write("ABOR");
        assert.deepEqual(await aborReplies(ftp), [426, 226]);
      } finally {
        data.close();
      }
      await assertWhole(ftp, "/big.bin", srcCrc);
    });

    await t.step("a client that stops reading is released by ABOR", async () => {
      const data = await startRetr(ftp, "/big.bin");
      try {
        assert.notEqual(await data.read(new Uint8Array(65536)), null);
        // Stop reading: the slave's socket buffer fills and its send blocks.
        await ftp.write("ABOR");
        assert.deepEqual(await aborReplies(ftp), [426, 226]);
        // The slave dropped the connection: what is left to read ends well short of the file.
        const rest = await deadline(readAll(data), { ms: 30_000, what: "data EOF" })
          .catch(() => new Uint8Array(0));
        assert.ok(rest.length < SIZE - 65536, "the whole file arrived despite ABOR");
      } finally {
        data.close();
      }
      await assertWhole(ftp, "/big.bin", srcCrc);
    });

    await t.step("ABOR in the middle of an upload keeps a prefix of what was sent", async () => {
      const endpoint = await ftp.pasv("STOR /aborted.bin");
      const data = await Deno.connect({ hostname: endpoint.host, port: endpoint.port });
      const sent = 8 * MiB;
      try {
        const r = await ftp.send("STOR /aborted.bin");
        assert.equal(r.code, 150, r.lines.join(" | "));
        await writeAll(data, src.subarray(0, sent));
        await waitForArrival(root, sent, () => site.logs(3000));
        await ftp.write("ABOR");
        assert.deepEqual(await aborReplies(ftp), [426, 226]);
      } finally {
        data.close();
      }
      const onDisk = await Deno.readFile(`${root}/aborted.bin`);
      assert.equal(onDisk.length, sent);
      assert.equal(crc32Hex(onDisk), crc32Hex(src.subarray(0, sent)));
    });

    await t.step("the slave killed mid-download: 426, then the file is whole", async () => {
      const data = await startRetr(ftp, "/big.bin");
      let received = 0;
      try {
        received += (await data.read(new Uint8Array(65536))) ?? 0;
        await site.killSlave("s1", "SIGKILL");
        received += await deadline(readAll(data), { ms: 20_000, what: "data EOF after kill" })
          .then((rest) => rest.length, () => 0);
      } finally {
        data.close();
      }
      assert.ok(received < SIZE, "the whole file arrived although the slave was killed");
      const done = await ftp.read();
      assert.equal(done.code, 426, done.lines.join(" | "));
      await site.waitSlaves(["s1"], "offline");
      await site.startSlave("s1");
      await assertWhole(ftp, "/big.bin", srcCrc);
    });

    await t.step("the slave killed mid-upload: 426, never taken for the file", async () => {
      const endpoint = await ftp.pasv("STOR /killed.bin");
      const data = await Deno.connect({ hostname: endpoint.host, port: endpoint.port });
      const sent = 8 * MiB;
      try {
        const r = await ftp.send("STOR /killed.bin");
        assert.equal(r.code, 150, r.lines.join(" | "));
        await writeAll(data, src.subarray(0, sent));
        const temp = await waitForArrival(root, sent, () => site.logs(3000));
        await site.killSlave("s1", "SIGKILL");
        const done = await ftp.read();
        assert.equal(done.code, 426, done.lines.join(" | "));
        // The prefix arrived under the temporary name only.
        const onDisk = await Deno.readFile(`${root}/${temp}`);
        assert.equal(crc32Hex(onDisk), crc32Hex(src.subarray(0, onDisk.length)));
        assert.ok(!await exists(`${root}/killed.bin`));
      } finally {
        data.close();
      }
      await site.waitSlaves(["s1"], "offline");
      await site.startSlave("s1");
      assert.equal((await ftp.send("SIZE /killed.bin")).code, 550);
      await poll(async () => (await arrivingUploads(root)).length === 0 || undefined);
      await assertWhole(ftp, "/big.bin", srcCrc);
    });
  });
}

/** PRET RETR + PASV + RETR; returns the open data connection once 150 arrived. */
async function startRetr(ftp: FtpControl, path: string): Promise<Deno.TcpConn> {
  const endpoint = await ftp.pasv(`RETR ${path}`);
  const data = await Deno.connect({ hostname: endpoint.host, port: endpoint.port });
  const r = await ftp.send(`RETR ${path}`);
  if (r.code !== 150 && r.code !== 125) {
    data.close();
    throw new Error(`RETR ${path} refused: ${r.lines.join(" | ")}`);
  }
  return data;
}

/** The replies after ABOR: 426 for the transfer, then the 2xx for ABOR. */
async function assertWhole(ftp: FtpControl, path: string, crc: string): Promise<void> {
  assert.equal((await ftp.send("NOOP")).code, 200);
  const { data } = await ftp.retrieve(path);
  assert.equal(data.length, SIZE);
  assert.equal(crc32Hex(data), crc);
}
