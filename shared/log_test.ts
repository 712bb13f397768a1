import assert from "node:assert/strict";
import { getLogger, reset } from "@logtape/logtape";
import { setupLogging } from "./log.ts";

Deno.test("setupLogging() writes one filtered line per record", async () => {
  const lines: string[] = [];
  try {
    await setupLogging("info", { write: (l) => lines.push(l) });
    const log = getLogger(["drftpd", "test"]);
    log.debug("hidden");
    log.info("user {user} logged in\nfrom {addr}", { user: "bob", addr: "1.2.3.4" });
    log.error("failed: {error}", { error: new RangeError("boom") });
    getLogger(["other"]).error("not ours");
    // Called again: replaces the configuration instead of throwing.
    await setupLogging("error", { write: (l) => lines.push(l) });
    log.info("hidden too");
  } finally {
    await reset();
  }
  assert.equal(lines.length, 2, lines.join(""));
  assert.match(
    lines[0]!,
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {4}drftpd\.test: user bob logged in\\nfrom 1\.2\.3\.4\n$/,
  );
  assert.match(lines[1]!, / ERROR {3}drftpd\.test: failed: RangeError: boom\n$/);
});

Deno.test("setupLogging() keeps objects on one line", async () => {
  const lines: string[] = [];
  try {
    await setupLogging("debug", { write: (l) => lines.push(l) });
    getLogger(["drftpd"]).debug("addr {addr}", { addr: { host: "::1", port: 21, tags: ["a"] } });
  } finally {
    await reset();
  }
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /DEBUG {3}drftpd: addr \{ host: "::1", port: 21, tags: \[ "a" \] \}\n$/);
});

Deno.test('setupLogging() with format "json" writes one JSON object per line', async () => {
  const lines: string[] = [];
  try {
    await setupLogging("info", { write: (l) => lines.push(l), format: "json" });
    getLogger(["drftpd", "test"]).info("user {user} logged in\nfrom {addr}", {
      user: "bob",
      addr: "1.2.3.4",
    });
  } finally {
    await reset();
  }
  assert.equal(lines.length, 1);
  assert.ok(lines[0]!.endsWith("\n") && !lines[0]!.slice(0, -1).includes("\n"), lines[0]);
  const record = JSON.parse(lines[0]!);
  assert.equal(record.level, "INFO");
  assert.equal(record.logger, "drftpd.test");
  assert.match(record.message, /user "?bob"? logged in\nfrom "?1\.2\.3\.4"?/);
  assert.deepEqual(record.properties, { user: "bob", addr: "1.2.3.4" });
});
