import assert from "node:assert/strict";
import { type FinishedTransfer, SiteMetrics, type TransferInfo } from "./metrics.ts";

const INFO: TransferInfo = {
  user: "bob",
  remoteHost: "10.0.0.9",
  path: "/a.bin",
  direction: "download",
  route: "direct",
  slave: "s1",
  ascii: false,
  size: 1000,
};

Deno.test("SiteMetrics counts transfers by direction, outcome and route", () => {
  let now = 1_000;
  const m = new SiteMetrics({ now: () => now });
  const finished: FinishedTransfer[] = [];
  m.onFinished((t) => finished.push(t));
  const a = m.startTransfer(INFO);
  const b = m.startTransfer({ ...INFO, direction: "upload", route: "relayed", slave: "s2" });
  a.progress(400);
  a.progress(300); // progress never goes back
  assert.deepEqual(m.active().map((t) => [t.path, t.bytes]), [["/a.bin", 400], ["/a.bin", 0]]);
  now = 3_000;
  a.end("complete", 1000);
  a.end("failed"); // ignored: already ended
  b.end("aborted");
  assert.deepEqual(m.active(), []);
  assert.deepEqual(m.transfers().sort((x, y) => x.direction < y.direction ? -1 : 1), [
    { direction: "download", outcome: "complete", route: "direct", count: 1 },
    { direction: "upload", outcome: "aborted", route: "relayed", count: 1 },
  ]);
  assert.deepEqual(m.bytes().find((x) => x.direction === "download")?.bytes, 1000);
  assert.equal(finished.length, 2);
  assert.equal(finished[0]!.ms, 2000);
  assert.equal(finished[0]!.outcome, "complete");
  m.login("ok");
  m.login("failed");
  m.login("failed");
  assert.deepEqual(m.logins(), { ok: 1, failed: 2, refused: 0 });
});

Deno.test("SiteMetrics.sample() averages each slave's rate over the last seconds", () => {
  let now = 0;
  const m = new SiteMetrics({ now: () => now });
  const t = m.startTransfer(INFO);
  assert.deepEqual(m.sample(), { at: 0, total: 0, slaves: { s1: 0 } });
  for (const [at, bytes] of [[1000, 1000], [2000, 3000], [3000, 3000], [4000, 7000]]) {
    now = at!;
    t.progress(bytes!);
    m.sample();
  }
  // the last 3 s: 1000 → 7000 bytes
  assert.deepEqual(m.history().at(-1), { at: 4000, total: 2000, slaves: { s1: 2000 } });
  t.end("complete", 7000);
  now = 5000;
  assert.equal(m.sample().slaves.s1, Math.round((7000 - 3000) / 3));
  assert.equal(m.history().length, 6);
});

Deno.test("SiteMetrics counts relayed bytes by way, and a rerouted transfer under its new route", () => {
  const m = new SiteMetrics();
  assert.deepEqual(m.relayedBytes(), { relay: 0, pasv_proxy: 0 });
  m.relayed("pasv_proxy", 100);
  m.relayed("pasv_proxy", 23);
  m.relayed("relay", 7);
  assert.deepEqual(m.relayedBytes(), { relay: 7, pasv_proxy: 123 });
  const t = m.startTransfer(INFO);
  t.reroute("relayed");
  t.end("complete", 50);
  t.reroute("direct"); // ignored: already ended
  assert.deepEqual(m.transfers(), [
    { direction: "download", outcome: "complete", route: "relayed", count: 1 },
  ]);
});
