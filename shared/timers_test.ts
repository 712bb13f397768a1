import assert from "node:assert/strict";
import { sleep } from "./timers.ts";

Deno.test("sleep resolves at once when aborted, before or during the wait", async () => {
  const before = new AbortController();
  before.abort();
  await sleep(60_000, before.signal); // would hang the test (and leak a timer) otherwise
  const during = new AbortController();
  const p = sleep(60_000, during.signal);
  during.abort();
  await p;
  await sleep(0, new AbortController().signal);
});

Deno.test("sleep waits when not aborted", async () => {
  let done = false;
  const p = sleep(20, new AbortController().signal).then(() => (done = true));
  await Promise.resolve();
  assert.equal(done, false);
  await p;
  assert.equal(done, true);
});
