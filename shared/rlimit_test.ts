import assert from "node:assert/strict";
import { connectionBudget, FD_RESERVE, raiseFdLimit } from "./rlimit.ts";

Deno.test("connectionBudget leaves the reserve and two descriptors per session", () => {
  assert.equal(connectionBudget(256), (256 - FD_RESERVE) / 2);
  assert.equal(connectionBudget(1024), 480);
  assert.equal(connectionBudget(10), 8); // never below a handful
  assert.equal(connectionBudget(Infinity), Infinity);
});

Deno.test("raiseFdLimit leaves the soft limit at the hard limit (or 1,048,576)", () => {
  const lim = raiseFdLimit();
  assert.ok(lim.soft >= lim.before, JSON.stringify(lim));
  assert.equal(lim.soft, Math.min(lim.hard, 1_048_576));
});
