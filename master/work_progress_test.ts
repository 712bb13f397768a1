import assert from "node:assert/strict";
import { formatBytes, formatProgress, WorkProgress } from "./work_progress.ts";

Deno.test("formatBytes() uses binary units", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(3 * 2 ** 30), "3.0 GiB");
});

Deno.test("WorkProgress reports files, rate and ETA; ended work disappears", () => {
  let now = 10_000;
  const work = new WorkProgress({ now: () => now });
  const h = work.start("remerge", "s1");
  assert.deepEqual(work.list().map((w) => [w.files, w.etaSeconds]), [[0, null]]);
  now += 4000;
  h.add(2000, 5 * 2 ** 20);
  h.add(2000, 5 * 2 ** 20);
  let [w] = work.list();
  assert.equal(w!.filesPerSecond, 1000);
  assert.equal(w!.etaSeconds, null, "no ETA without an expected total");
  h.expect(10_000);
  [w] = work.list();
  assert.equal(w!.etaSeconds, 6);
  assert.equal(
    formatProgress(w!, now),
    "4000 of ~10000 files (10.0 MiB) in 4 s, 1000 files/s, ETA 6 s",
  );
  h.add(7000, 0);
  assert.equal(work.list()[0]!.etaSeconds, null, "past the expected count");
  h.end();
  h.end();
  assert.deepEqual(work.list(), []);
});
