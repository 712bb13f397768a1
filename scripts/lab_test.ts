import assert from "node:assert/strict";
import { labPlan, tbfArgs } from "./lab.ts";

Deno.test("labPlan names, addresses and shaping for 3 slaves", () => {
  const plan = labPlan({ slaves: 3, rateMbit: 100 });
  assert.equal(plan.bridgeNs, "dftl-br");
  assert.equal(plan.master.address, "10.77.0.1");
  assert.equal(plan.client.address, "10.77.0.2");
  assert.deepEqual(plan.slaves.map((s) => [s.ns, s.address, s.peer, s.rateMbit]), [
    ["dftl-s1", "10.77.0.11", "v-s1", 100],
    ["dftl-s2", "10.77.0.12", "v-s2", 100],
    ["dftl-s3", "10.77.0.13", "v-s3", 100],
  ]);
  assert.equal(plan.master.rateMbit, null);
  // every command is ip or tc and every address is inside the lab's /24
  for (const argv of plan.setup) {
    assert.ok(argv[0] === "ip" || argv[0] === "tc", argv.join(" "));
    for (const a of argv) {
      if (/^\d+\.\d+\.\d+\.\d+/.test(a)) assert.match(a, /^10\.77\.0\.\d+\/24$/);
    }
  }
  // each slave shaped on both ends of its link, nobody else shaped
  const tc = plan.setup.filter((a) => a[0] === "tc");
  assert.equal(tc.length, 6);
  assert.deepEqual(tc[0], tbfArgs("dftl-s1", "eth0", 100));
  assert.deepEqual(tc[1], tbfArgs("dftl-br", "v-s1", 100));
  assert.ok(tc.every((a) => a.includes("100mbit")));
  // the bridge namespace is created before any veth is moved into it
  const brAdd = plan.setup.findIndex((a) => a.join(" ") === "ip netns add dftl-br");
  const firstVeth = plan.setup.findIndex((a) => a.includes("veth"));
  assert.ok(brAdd >= 0 && brAdd < firstVeth);
  // teardown removes every namespace it created
  const created = plan.setup.filter((a) => a[1] === "netns" && a[2] === "add").map((a) => a[3]);
  assert.deepEqual(plan.teardown.map((a) => a[3]).sort(), created.sort());
});

Deno.test("labPlan defaults, burst and validation", () => {
  const plan = labPlan({ slaves: 1 });
  assert.equal(plan.slaves[0]!.rateMbit, 100);
  // deno-fmt-ignore
  assert.deepEqual(tbfArgs("x", "eth0", 1000), [
    "tc", "-n", "x", "qdisc", "replace", "dev", "eth0", "root", "tbf",
    "rate", "1000mbit", "burst", "125000", "latency", "50ms",
  ]);
  assert.equal(labPlan({ slaves: 100 }).slaves[99]!.address, "10.77.0.110");
  assert.throws(() => labPlan({ slaves: 0 }), RangeError);
  assert.throws(() => labPlan({ slaves: 101 }), RangeError);
  assert.throws(() => labPlan({ slaves: 2, subnet: "8.8.8" }), RangeError);
  assert.throws(() => labPlan({ slaves: 2, rateMbit: -1 }), RangeError);
  assert.equal(labPlan({ slaves: 1, subnet: "192.168.77" }).master.address, "192.168.77.1");
});
