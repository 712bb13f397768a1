import assert from "node:assert/strict";
import {
  RecentThroughput,
  SPEED_WINDOW_MS,
  SpeedMeter,
  STALL_MS,
  THROUGHPUT_WINDOW_MS,
} from "./progress.ts";

Deno.test("SpeedMeter: no speed before the first report", () => {
  const m = new SpeedMeter(1000);
  assert.equal(m.bytes, 0);
  assert.equal(m.speed(1000), 0);
  assert.equal(m.speed(1400), 0);
});

Deno.test("SpeedMeter: rate since the start while shorter than the window", () => {
  const m = new SpeedMeter(0);
  m.add(500, 500_000);
  m.add(1000, 1_000_000);
  assert.equal(m.bytes, 1_000_000);
  assert.equal(m.speed(1000), 1_000_000);
  assert.equal(m.speed(1200), 1_000_000, "measured up to the latest report, not to now");
});

Deno.test("SpeedMeter: only the last window counts once the transfer speeds up", () => {
  const m = new SpeedMeter(0);
  let bytes = 0;
  for (let t = 500; t <= 10_000; t += 500) {
    bytes += t <= 5_000 ? 50_000 : 500_000; // 100 kB/s, then 1 MB/s
    m.add(t, bytes);
  }
  assert.equal(m.speed(10_000), 1_000_000);
  // the window is SPEED_WINDOW_MS: 3 s of 1 MB/s
  assert.ok(SPEED_WINDOW_MS <= 5_000);
});

Deno.test("SpeedMeter: a stalled transfer shows 0, then its speed again when bytes move", () => {
  const m = new SpeedMeter(0);
  m.add(1000, 1000);
  assert.equal(m.speed(1000 + STALL_MS), 1000);
  assert.equal(m.speed(1001 + STALL_MS), 0);
  m.add(10_000, 4000);
  assert.ok(m.speed(10_000) > 0);
});

Deno.test("SpeedMeter: a count going backwards is ignored", () => {
  const m = new SpeedMeter(0);
  m.add(1000, 1000);
  m.add(1500, 10);
  assert.equal(m.bytes, 1000);
  assert.equal(m.speed(1500), 1000);
});

Deno.test("RecentThroughput: bytes/s over the last 30 s, forgetting older bytes", () => {
  const r = new RecentThroughput();
  assert.equal(r.rate(0), 0);
  r.add(1_000, 30_000);
  r.add(1_500, 30_000);
  r.add(20_000, 0);
  r.add(20_000, -5);
  assert.equal(r.rate(20_000), 2_000);
  r.add(25_000, 90_000);
  assert.equal(r.rate(30_999), 5_000);
  // The first bucket (1 s to 2 s) leaves the window at 31 s.
  assert.equal(r.rate(31_000), 3_000);
  assert.equal(r.rate(THROUGHPUT_WINDOW_MS + 25_000), 0);
});
