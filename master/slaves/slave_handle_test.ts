import assert from "node:assert/strict";
import { FrameConn } from "../../shared/link.ts";
import type { FromMaster, FromSlave, RequestMsg } from "../../shared/protocol.ts";
import { SlaveRegistry } from "./registry.ts";
import { SlaveGoneError, SlaveHandle, type SlaveLinkEvents } from "./slave_handle.ts";

const noRemerge: SlaveLinkEvents = {
  start: () => Promise.resolve(),
  remerge: () => Promise.reject(new Error("unexpected remerge")),
  remergeDone: () => Promise.reject(new Error("unexpected remerge_done")),
};

/** A handle on one end of a real TCP connection; the test plays the slave on the other. */
async function linked(): Promise<
  {
    handle: SlaveHandle;
    slave: FrameConn<FromSlave>;
    served: Promise<void>;
    [Symbol.asyncDispose](): Promise<void>;
  }
> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [near, far] = await Promise.all([
    listener.accept(),
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
  ]);
  const handle = new SlaveHandle("s1", new FrameConn<FromMaster>(near), "127.0.0.1", "127.0.0.1");
  handle.state = "online";
  const served = handle.serve(noRemerge);
  const slave = new FrameConn<FromSlave>(far);
  return {
    handle,
    slave,
    served,
    async [Symbol.asyncDispose]() {
      slave.close();
      handle.close();
      await served;
    },
  };
}

/** The next request the master sent (pings skipped). */
async function nextRequest(slave: FrameConn<FromSlave>): Promise<RequestMsg> {
  for (;;) {
    const f = await slave.read() as { type: string } | null;
    assert.ok(f, "link closed");
    if (f.type !== "ping") return f as RequestMsg;
  }
}

Deno.test("request resolves with the typed reply of its kind", async () => {
  await using t = await linked();
  const reply = t.handle.request("listen", { xfer: "x1", peer: null });
  const req = await nextRequest(t.slave);
  assert.equal(req.type, "listen");
  await t.slave.write({ type: "reply", id: req.id, data: { port: 4000, host: "10.1.2.3" } });
  const { port, host } = await reply;
  assert.equal(port, 4000);
  assert.equal(host, "10.1.2.3");
});

Deno.test("a reply that does not fit its request rejects it and drops the link", async () => {
  await using t = await linked();
  const reply = t.handle.request("checksum", { path: "/f" });
  const req = await nextRequest(t.slave);
  await t.slave.write({ type: "reply", id: req.id, data: { crc32: "12", size: 3 } });
  await assert.rejects(reply, /bad field "crc32" in the "checksum" reply/);
  await t.served;
  assert.equal(t.handle.state, "gone");
  await assert.rejects(t.handle.request("delete", { path: "/f" }), SlaveGoneError);
});

Deno.test("progress events feed activeTransfers with bytes and speed until the reply", async () => {
  await using kv = await Deno.openKv(":memory:");
  const registry = new SlaveRegistry(kv);
  await using t = await linked();
  assert.ok(await registry.attach(t.handle));
  const done = t.handle.request("transfer", {
    xfer: "x2",
    dir: "receive",
    path: "/up/f.bin",
    offset: 0,
    append: false,
    ascii: false,
    endpoint: { kind: "passive" },
    peer: null,
    tls: "none",
  });
  const req = await nextRequest(t.slave);
  assert.equal(req.type, "transfer");
  let [x] = registry.activeTransfers();
  assert.ok(x);
  assert.equal(x.slave, "s1");
  assert.equal(x.xfer, "x2");
  assert.equal(x.direction, "upload");
  assert.equal(x.path, "/up/f.bin");
  assert.equal(x.bytes, 0);
  // Two reports some time apart give a speed; each is seen once the master has read it.
  const report = async (bytes: number) => {
    await t.slave.write({ type: "progress", xfer: "x2", bytes });
    while (registry.activeTransfers()[0]!.bytes !== bytes) {
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  await report(1000);
  const t0 = performance.now();
  while (performance.now() - t0 < 50) await new Promise((r) => setTimeout(r, 10));
  await report(11_000);
  [x] = registry.activeTransfers();
  assert.equal(x!.bytes, 11_000);
  assert.ok(x!.speed > 0, `speed ${x!.speed}`);
  await t.slave.write({ type: "progress", xfer: "unknown", bytes: 5 }); // ignored
  await t.slave.write({
    type: "reply",
    id: req.id,
    data: { bytes: 11_000, size: 11_000, crc32: 7, crcWhole: true, ms: 60, mtime: 1 },
  });
  const result = await done;
  assert.equal(result.crc32, 7);
  assert.deepEqual(registry.activeTransfers(), []);
});
