import assert from "node:assert/strict";
import { FrameConn } from "../../shared/link.ts";
import type { FromMaster, FromSlave, RequestMsg } from "../../shared/protocol.ts";
import { poll } from "../../testing/wait.ts";
import { SlaveRegistry } from "./registry.ts";
import {
  type SilenceLimits,
  SlaveGoneError,
  SlaveHandle,
  type SlaveLinkEvents,
  SlaveUnresponsiveError,
} from "./slave_handle.ts";

const noRemerge: SlaveLinkEvents = {
  start: () => Promise.resolve(),
  remerge: () => Promise.reject(new Error("unexpected remerge")),
  remergeDone: () => Promise.reject(new Error("unexpected remerge_done")),
};

/** A handle on one end of a real TCP connection; the test plays the slave on the other. */
async function linked(limits?: SilenceLimits): Promise<
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
  const link = new FrameConn<FromMaster>(near);
  const handle = new SlaveHandle("s1", link, "127.0.0.1", "127.0.0.1", limits);
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

/** A plain passive transfer request body. */
function passiveTransfer(xfer: string, dir: "send" | "receive", path: string) {
  return {
    xfer,
    dir,
    path,
    offset: 0,
    append: false,
    ascii: false,
    endpoint: { kind: "passive" as const },
    peer: null,
    tls: "none" as const,
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
  const done = t.handle.request("transfer", passiveTransfer("x2", "receive", "/up/f.bin"));
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
    data: { bytes: 12_000, size: 12_000, crc32: 7, crcWhole: true, ms: 60, mtime: 1 },
  });
  const result = await done;
  assert.equal(result.crc32, 7);
  // The slave's recent throughput counts every byte, the last ones from the reply: 12 kB / 30 s.
  assert.equal(t.handle.throughput, 400);
  assert.deepEqual(registry.activeTransfers(), []);
});

Deno.test("a silent slave is passed over, its short requests fail, then it is dropped", async () => {
  await using t = await linked({ unresponsiveMs: 1000, dropMs: 2500 });
  const gone = new Promise((r) => t.handle.signal.addEventListener("abort", r, { once: true }));
  const listen = t.handle.request("listen", { xfer: "x1", peer: null });
  const transfer = t.handle.request("transfer", passiveTransfer("x2", "send", "/f"));
  transfer.catch(() => {});
  await assert.rejects(listen, SlaveUnresponsiveError);
  assert.equal(t.handle.available, false);
  assert.equal(t.handle.unresponsive, true);
  await assert.rejects(t.handle.request("delete", { path: "/f" }), /not responding/);
  // Any frame makes it responsive again; the transfer still waits.
  await t.slave.write({ type: "ping", t: Date.now() });
  await poll(() => t.handle.unresponsive ? undefined : true, { timeoutMs: 5000, intervalMs: 20 });
  assert.equal(t.handle.available, true);
  // Silent past dropMs: dropped, the transfer fails as cut off.
  await gone;
  await assert.rejects(transfer, SlaveGoneError);
  assert.equal(t.handle.state, "gone");
});
