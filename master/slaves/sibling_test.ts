/**
 * sendViaSibling against two real slave transfer managers (real sockets, real files) behind
 * real SlaveHandles: the test plays the client on B's passive port.
 */
import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { readAll } from "../../shared/bytes.ts";
import type { TransferResult } from "../../shared/protocol.ts";
import type { FileEntry } from "../filelist/types.ts";
import { KvFilelist } from "../filelist/kv_filelist.ts";
import { SlaveDouble } from "../ftp/_session_double.ts";
import { PAIR, pattern, RealSlave } from "./_real_slave.ts";
import type { TransferOptions } from "../../slave/transfer.ts";
import { SlaveRegistry } from "./registry.ts";
import {
  type ClientSend,
  keepWanted,
  pickHolder,
  sendViaSibling,
  type SiblingOrder,
} from "./sibling.ts";
import { SlaveReplyError } from "./slave_handle.ts";
import { Replicator } from "./replication.ts";
import { parseMasterConfig } from "../../shared/config.ts";

function fileEntry(
  data: Uint8Array,
  slaves: string[],
  crc: number | null = crc32(data),
): FileEntry {
  return {
    kind: "file",
    name: "f.bin",
    size: data.length,
    mtime: 1_000,
    owner: "u",
    group: "g",
    crc32: crc,
    slaves,
    xferMs: 0,
  };
}

/** B's passive port for the client and the send transfers.ts would order. */
async function clientPort(b: RealSlave, xfer: string, offset = 0, tls = false) {
  const { port } = await b.handle.request("listen", { xfer, peer: "127.0.0.1" });
  const send: ClientSend = {
    xfer,
    dir: "send",
    path: "/d/f.bin",
    offset,
    append: false,
    ascii: false,
    endpoint: { kind: "passive" },
    peer: null,
    tls: tls ? "server" : "none",
  };
  return { port, send };
}

/** `sendViaSibling` from `a` to `b` of `data` held by `a`, plain, nothing kept, unless `order` says. */
function stream(
  a: RealSlave,
  b: RealSlave,
  send: ClientSend,
  data: Uint8Array,
  order: Partial<SiblingOrder> = {},
): Promise<TransferResult> {
  const result = sendViaSibling(b.handle, send, {
    from: a.handle,
    file: fileEntry(data, ["a"]),
    tls: false,
    keep: false,
    filelist: null as never, // used only for a kept copy
    ...order,
  });
  result.catch(() => {}); // awaited by the test, maybe after the client read
  return result;
}

async function setup(data: Uint8Array, options: TransferOptions = {}) {
  const a = await RealSlave.create("a", options);
  const b = await RealSlave.create("b", options);
  await Deno.mkdir(`${a.root}/d`);
  await Deno.writeFile(`${a.root}/d/f.bin`, data);
  return { a, b };
}

Deno.test("sendViaSibling: B streams A's file to the client; nothing stays on B", async () => {
  const data = pattern(3_000_001, 1);
  const { a, b } = await setup(data);
  await using _a = a;
  await using _b = b;
  await using kv = await Deno.openKv(":memory:").then((kv) => ({
    kv,
    [Symbol.asyncDispose]: () => Promise.resolve(kv.close()),
  }));
  const { port, send } = await clientPort(b, "c1");
  const result = stream(a, b, send, data, { filelist: new KvFilelist(kv.kv) });
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  assert.deepEqual(await readAll(conn), data);
  const r = await result;
  assert.deepEqual([r.bytes, r.crc32, r.crcWhole, r.kept], [
    data.length,
    crc32(data),
    true,
    undefined,
  ]);
  assert.deepEqual(b.files(), []);
  assert.equal(a.handle.activeTransfers, 0);
  assert.equal(b.manager.pendingListeners, 0);
});

Deno.test("sendViaSibling over TLS between the slaves and to the client, from a REST offset", async () => {
  const data = pattern(1_500_000, 2);
  const { a, b } = await setup(data);
  await using _a = a;
  await using _b = b;
  const offset = 654_321;
  const { port, send } = await clientPort(b, "c2", offset, true);
  // keep is ignored from an offset: B keeps nothing.
  const result = stream(a, b, send, data, { tls: true, keep: true });
  const plain = await Deno.connect({ hostname: "127.0.0.1", port });
  using conn = await Deno.startTls(plain, { hostname: "localhost", caCerts: [PAIR.cert] });
  assert.deepEqual(await readAll(conn), data.subarray(offset));
  const r = await result;
  assert.deepEqual([r.bytes, r.crcWhole, r.kept], [data.length - offset, false, undefined]);
  assert.equal(r.tls?.protocol, "TLSv1.3");
  assert.deepEqual(b.files(), []);
  const sends = a.double.of("transfer");
  assert.equal(sends.length, 1);
  assert.deepEqual(
    [
      sends[0]!.type === "transfer" && sends[0]!.offset,
      sends[0]!.type === "transfer" && sends[0]!.tls,
    ],
    [offset, "client"],
  );
});

Deno.test("sendViaSibling with keep: B's copy lands and B is recorded as a holder", async () => {
  const data = pattern(800_000, 3);
  const { a, b } = await setup(data);
  await using _a = a;
  await using _b = b;
  const kv = await Deno.openKv(":memory:");
  try {
    const filelist = new KvFilelist(kv);
    await filelist.mkdirs("/d", "u", "g");
    const file = fileEntry(data, ["a"]);
    await filelist.putFile("/d/f.bin", { ...file });
    const entry = await filelist.get("/d/f.bin") as FileEntry;
    const { port, send } = await clientPort(b, "c3");
    const result = stream(a, b, send, data, { file: entry, keep: true, filelist });
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    assert.deepEqual(await readAll(conn), data);
    assert.equal((await result).kept, true);
    assert.deepEqual(b.files(), ["/d/f.bin"]);
    assert.deepEqual(await Deno.readFile(`${b.root}/d/f.bin`), data);
    assert.deepEqual(((await filelist.get("/d/f.bin")) as FileEntry).slaves.sort(), ["a", "b"]);
  } finally {
    kv.close();
  }
});

Deno.test("sendViaSibling fails with mismatch for another CRC32, and aborts A", async () => {
  const data = pattern(200_000, 4);
  const { a, b } = await setup(data);
  await using _a = a;
  await using _b = b;
  const { port, send } = await clientPort(b, "c4");
  const result = stream(a, b, send, data, {
    file: fileEntry(data, ["a"], crc32(data) ^ 0x10),
    keep: true,
  });
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await readAll(conn).catch(() => {});
  await assert.rejects(
    result,
    (e: unknown) => e instanceof SlaveReplyError && e.code === "mismatch",
  );
  assert.deepEqual(b.files(), [], "the kept copy's temporary file is gone");
  assert.ok(a.double.of("abort").length > 0, "A's send is aborted too");
});

Deno.test("sendViaSibling: A dying mid-stream fails the client's transfer and leaves nothing", async () => {
  const data = pattern(64 * 1024 * 1024, 5);
  const { promise: moving, resolve } = Promise.withResolvers<void>();
  const { a, b } = await setup(data, { progressIntervalMs: 0, onProgress: () => resolve() });
  await using _a = a;
  await using _b = b;
  const { port, send } = await clientPort(b, "c5");
  const result = stream(a, b, send, data, { keep: true });
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const first = new Uint8Array(65536);
  assert.ok((await conn.read(first))! > 0); // bytes flow before A dies
  await moving;
  // A dies: its link and its sockets go at once.
  a.manager.close();
  await a.double.close();
  await assert.rejects(result);
  await readAll(conn, 128 * 1024 * 1024).catch(() => {});
  assert.deepEqual(b.files(), [], "no temporary file on B");
  assert.equal(b.manager.pendingListeners, 0);
});

Deno.test("an ABOR of the client's transfer on B aborts A's send too", async () => {
  const data = pattern(64 * 1024 * 1024, 6);
  const { a, b } = await setup(data);
  await using _a = a;
  await using _b = b;
  const abortOfA = Promise.withResolvers<string>();
  const answer = a.double.answer;
  a.double.answer = (req) => {
    if (req.type === "abort") abortOfA.resolve(req.xfer);
    return answer(req);
  };
  const { port, send } = await clientPort(b, "c6");
  const result = stream(a, b, send, data);
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  assert.ok((await conn.read(new Uint8Array(65536)))! > 0);
  await b.handle.request("abort", { xfer: "c6" }); // what transfers.ts does on ABOR
  // B's "aborted", or A's failed write when B dropping A's connection is heard of first.
  await assert.rejects(result, SlaveReplyError);
  const sent = a.double.of("transfer")[0]!;
  assert.ok(sent.type === "transfer");
  assert.equal(await abortOfA.promise, sent.xfer);
});

Deno.test("pickHolder takes the least busy online holder other than B; keepWanted follows the rules", async () => {
  const kv = await Deno.openKv(":memory:");
  const slaves = ["a", "b", "c"].map((n) => new SlaveDouble(n));
  try {
    const registry = new SlaveRegistry(kv);
    for (const s of slaves) await registry.attach(s.handle);
    const [a, b, c] = slaves.map((s) => s.handle) as [
      typeof slaves[0]["handle"],
      typeof slaves[0]["handle"],
      typeof slaves[0]["handle"],
    ];
    a.activeTransfers = 3;
    const file = { ...fileEntry(new Uint8Array(1), ["a", "b", "c"]), path: "/x/f.bin" };
    assert.equal(pickHolder(registry, b, file), c);
    c.state = "gone";
    assert.equal(pickHolder(registry, b, file), a);
    assert.throws(() => pickHolder(registry, b, { ...file, slaves: ["b"] }), /not available/);

    c.state = "online";

    // B (to) is b; the file is on a alone, a rule wants 3 copies of /x/**.
    const signal = new AbortController().signal;
    const rules = [{ path: "/x/**", copies: 3 }];
    const replication = new Replicator(
      { filelist: new KvFilelist(kv), registry, tls: false },
      { rules, perSlave: 1 },
      { signal },
    );
    const one = fileEntry(new Uint8Array(1000), ["a"]);
    const opts = { offset: 0, replication, registry, to: b };
    assert.equal(keepWanted("/x/f.bin", one, opts), true);
    assert.equal(keepWanted("/y/f.bin", one, opts), false, "no rule");
    assert.equal(keepWanted("/x/f.bin", one, { ...opts, offset: 1 }), false, "a range");
    assert.equal(keepWanted("/x/f.bin", { ...one, crc32: null }, opts), false, "no CRC32");
    assert.equal(keepWanted("/x/f.bin", one, { ...opts, replication: undefined }), false);
    assert.equal(keepWanted("/x/f.bin", { ...one, slaves: ["a", "c"] }, opts), true, "2 < 3");
    c.state = "gone";
    assert.equal(keepWanted("/x/f.bin", { ...one, slaves: ["a", "c", "d"] }, opts), true, "c off");
    const minFree = registry.policy.minFree;
    b.disk = { free: minFree + one.size - 1, total: 1e12 };
    assert.equal(keepWanted("/x/f.bin", one, opts), false, "no room left for uploads on b");
    b.disk = { free: 1e12, total: 2e12 };
    // A [[selection.rules]] entry that keeps b out of /x/** keeps the copy off b too.
    const selection = parseMasterConfig(
      '[[selection.rules]]\npath = "/x/**"\nexclude = ["b"]\n',
      null,
      "/",
    ).selection;
    const ruled = new SlaveRegistry(kv, selection);
    for (const s of slaves) await ruled.attach(s.handle);
    assert.equal(keepWanted("/x/f.bin", one, { ...opts, registry: ruled }), false, "excluded");
  } finally {
    for (const s of slaves) await s.close();
    kv.close();
  }
});
