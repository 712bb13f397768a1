/**
 * One process per folder: a second master on the same data folder, or a second slave on the same
 * root, stops at once with a message naming the folder, and the running site is not disturbed.
 */

import assert from "node:assert/strict";
import { describeRun, makeSite, repoRoot, run } from "../testing/mod.ts";

Deno.test("a second master or slave on the same folder refuses to start", async () => {
  await using site = await makeSite({ slaves: [{ name: "s1", address: "127.0.0.1" }] });
  const second = async (args: string[]) =>
    await run(Deno.execPath(), ["run", "-A", "main.ts", ...args], {
      cwd: repoRoot,
      timeoutMs: 30_000,
    });

  const master = await second(["master", "--config", site.masterConfig]);
  assert.equal(master.code, 1, describeRun("second master", master));
  assert.match(master.stderr, /Master data folder ".*master-data" is in use by another process/);

  const slave = await second(["slave", "--config", `${site.dir}/slave-s1.toml`]);
  assert.equal(slave.code, 1, describeRun("second slave", slave));
  assert.match(slave.stderr, /Slave root ".*root-s1" is in use by another process/);

  // the first ones still serve
  await using ftp = await site.control();
  assert.equal((await ftp.send("NOOP")).code, 200);
  const { states } = await site.slaveStates();
  assert.equal(states.s1, "online");
});
