/**
 * A slave with the wrong secret never becomes available: SITE SLAVES keeps not showing it online
 * after the good slave is, and the slave's log shows the refusal.
 */

import assert from "node:assert/strict";
import { makeSite, poll } from "../testing/mod.ts";

Deno.test("a slave with a wrong secret is refused", async () => {
  await using site = await makeSite({
    slaves: [
      { name: "good", address: "127.0.0.2" },
      { name: "intruder", address: "127.0.0.3", secret: "not-the-secret", waitOnline: false },
    ],
  });

  // the refusal shows in the slave's log (bounded wait)
  const refusal =
    /refus|denied|reject|unauthori[sz]ed|forbidden|mismatch|wrong secret|(bad|invalid) (mac|secret)|auth\w* fail/i;
  await poll(async () => {
    const slaveLines = (await site.log("intruder")).split("\n");
    return slaveLines.some((l) => !l.startsWith("=====") && refusal.test(l)) ? true : undefined;
  }, {
    timeoutMs: 15_000,
    describe: async () => `a logged refusal of the intruder\n${await site.logs(6000)}`,
  });

  // observe SITE SLAVES for a few seconds: the intruder is never online, the good one stays
  const until = Date.now() + 4000;
  let seen = 0;
  while (Date.now() < until || seen < 3) {
    const { states, reply } = await site.slaveStates();
    assert.notEqual(states.intruder, "online", `intruder shown online:\n${reply.lines.join("\n")}`);
    assert.equal(states.good, "online", `good slave not online:\n${reply.lines.join("\n")}`);
    seen++;
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
});
