import assert from "node:assert/strict";
import { deadline, sleep, TimeoutError } from "./timers.ts";

Deno.test("sleep resolves within 100 ms of an abort, before or during the wait", async () => {
  const before = new AbortController();
  before.abort();
  let start = performance.now();
  await sleep(60_000, before.signal);
  assert.ok(performance.now() - start < 100, "an already aborted sleep returns at once");

  const during = new AbortController();
  const p = sleep(60_000, during.signal);
  let abortedAt = Infinity;
  setTimeout(() => {
    abortedAt = performance.now();
    during.abort();
  }, 20);
  await p;
  const ms = performance.now() - abortedAt;
  assert.ok(ms < 100, `returned ${ms.toFixed(0)} ms after the abort`);

  start = performance.now();
  await sleep(0, new AbortController().signal);
  assert.ok(performance.now() - start < 100);
});

Deno.test("sleep waits when not aborted", async () => {
  let done = false;
  const p = sleep(20, new AbortController().signal).then(() => (done = true));
  await Promise.resolve();
  assert.equal(done, false);
  await p;
  assert.equal(done, true);
});

Deno.test("deadline settles like its promise, or rejects naming what timed out", async () => {
  assert.equal(await deadline(Promise.resolve(7), { ms: 1000, what: "seven" }), 7);
  await assert.rejects(
    deadline(Promise.reject(new RangeError("own")), { ms: 1000, what: "x" }),
    RangeError,
  );
  const never = new Promise<never>(() => {});
  await assert.rejects(deadline(never, { ms: 10, what: "the reply" }), (e: unknown) => {
    assert.ok(e instanceof TimeoutError);
    assert.match(e.message, /Timed out after 10 ms: the reply/);
    return true;
  });
});
