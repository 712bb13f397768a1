/**
 * copyToSlave against real slave transfer managers (real sockets, real files) behind real
 * SlaveHandles: a copy whose source dies resumes from another holder (a range copy).
 */
import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { writeAll } from "../../shared/bytes.ts";
import { poll } from "../../testing/wait.ts";
import { type DataEngine, nativeEngine } from "../../slave/data_engine.ts";
import { KvFilelist } from "../filelist/kv_filelist.ts";
import { pattern, RealSlave } from "./_real_slave.ts";
import { copyToSlave } from "./copy.ts";
import { SlaveRegistry } from "./registry.ts";

Deno.test("a copy whose source dies resumes from another holder at the bytes B kept", async () => {
  const data = pattern(3_000_000, 11);
  const head = 1_000_000;
  const headSent = Promise.withResolvers<void>();
  // A sends the first `head` bytes, then stalls until its transfer is aborted.
  const stalling: DataEngine = {
    ...nativeEngine,
    async sendFile(socket, _file, range, hooks) {
      await writeAll(socket.conn, data.subarray(range.offset, range.offset + head));
      hooks.progress(head);
      headSent.resolve();
      return await new Promise((_, reject) =>
        hooks.signal.addEventListener("abort", () => reject(hooks.readError("aborted")), {
          once: true,
        })
      );
    },
  };
  await using a = await RealSlave.create("a", { engine: stalling });
  await using c = await RealSlave.create("c");
  await using b = await RealSlave.create("b");
  for (const s of [a, c]) {
    await Deno.mkdir(`${s.root}/d`);
    await Deno.writeFile(`${s.root}/d/f.bin`, data);
  }
  await using kv = await Deno.openKv(":memory:");
  const filelist = new KvFilelist(kv);
  await filelist.mkdir("/d", "u", "g");
  await filelist.putFile("/d/f.bin", {
    size: data.length,
    mtime: 1_000,
    owner: "u",
    group: "g",
    crc32: crc32(data),
    slaves: ["a", "c"],
    xferMs: 0,
  });
  const registry = new SlaveRegistry(kv);
  for (const s of [a, c, b]) await registry.attach(s.handle); // a first: the first source

  const copying = copyToSlave({ filelist, registry, tls: false }, "/d/f.bin", "b");
  await headSent.promise;
  // B has written what A sent (under its temporary name).
  await poll(() => {
    const temp = b.files().find((f) => f.startsWith("/d/.drftpd-copy."));
    return temp && Deno.statSync(b.root + temp).size === head ? true : undefined;
  }, { describe: () => `B to hold ${head} bytes: ${b.files()}` });
  // A's link goes (and with it its transfer): the copy goes on from C where B stopped.
  a.manager.close();
  await a.double.close();
  const done = await copying;
  assert.equal(done.from, "c");
  assert.deepEqual(await Deno.readFile(`${b.root}/d/f.bin`), data);
  assert.deepEqual(b.files(), ["/d/f.bin"], "no temporary file left");
  const resumed = c.double.of("transfer")[0]!;
  assert.ok(resumed.type === "transfer");
  assert.ok(resumed.offset > 0 && resumed.offset <= head, `resumed at ${resumed.offset}`);
  assert.equal(done.bytes, data.length - resumed.offset, "C sent only the rest");
  const entry = await filelist.get("/d/f.bin");
  assert.ok(entry?.kind === "file" && entry.slaves.includes("b"), "B recorded as a holder");
});
