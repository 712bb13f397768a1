/**
 * End-to-end: SIGTERM to the master during an upload. The master stops accepting at once, lets
 * the running transfer finish (the client gets its 226, the file is recorded), then exits 0. The
 * file is 8 MiB sent at 2 MiB/s (about 4 s) instead of the 1 GiB: the same path, a fast
 * test. (An upload, because a download's last megabytes sit in socket buffers: the slave is done
 * sending before the client has read them.)
 */
import assert from "node:assert/strict";
import {
  curl,
  CURL_PRET,
  describeRun,
  freePort,
  makeSite,
  poll,
  randomBytes,
  type Site,
  tempDir,
} from "../testing/mod.ts";

Deno.test("SIGTERM during an upload: it completes, new connections are refused, exit 0", async () => {
  const httpPort = freePort();
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1" }],
    http: `127.0.0.1:${httpPort}`,
    logLevel: "info",
  });
  await using tmp = await tempDir();
  const { data, upload } = await pacedUpload(site, httpPort, `${tmp.path}/big.bin`, 8 << 20);

  const exited = site.stopMaster("SIGTERM");
  // Stop accepting: a new control connection is refused while the transfer still runs.
  await poll(async () => {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port: site.ftpPort })).close();
      return undefined;
    } catch (e) {
      return e instanceof Deno.errors.ConnectionRefused ? true : undefined;
    }
  }, { intervalMs: 20, describe: () => "the FTP port to refuse connections" });

  const r = await upload;
  assert.equal(r.code, 0, describeRun("curl upload", r));
  assert.deepEqual(
    await Deno.readFile(`${site.slaveRoot("s1")}/big.bin`),
    data,
    "every byte arrived",
  );
  const status = await exited;
  assert.equal(status?.code, 0, await site.log("master"));
  const log = await site.log("master");
  assert.match(log, /Stopping: no new connections; waiting up to 30 s for 1 running transfer/);
  assert.match(log, /STOR admin \/big\.bin 8388608 bytes/);
  assert.doesNotMatch(log, / ERROR /);
});

Deno.test("a slave stopped with SIGTERM tells the master it is leaving: no disconnect warning", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1" }, { name: "s2", address: "127.0.0.1" }],
    logLevel: "info",
  });
  const status = await site.killSlave("s1", "SIGTERM");
  assert.equal(status?.code, 0, await site.log("s1"));
  const log = await poll(async () => {
    const text = await site.log("master");
    return /Slave s1 left/.test(text) ? text : undefined;
  }, { describe: () => "the master to log that s1 left" });
  assert.match(log, /Slave s1 is leaving \(stopping\)/);
  assert.doesNotMatch(log, /Slave s1 disconnected/);
  assert.doesNotMatch(log, / (ERROR|WARNING) .*s1/);
  await site.waitSlaves(["s1"], "offline");
  // Killed without a word, a slave is still reported as a failure.
  await site.killSlave("s2", "SIGKILL");
  await poll(async () =>
    /WARNING .*Slave s2 disconnected/.test(await site.log("master")) ? true : undefined
  );
});

Deno.test("SIGTERM to a slave during an upload: it completes with 226, then the slave leaves, exit 0", async () => {
  const httpPort = freePort();
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1" }],
    http: `127.0.0.1:${httpPort}`,
    logLevel: "info",
  });
  await using tmp = await tempDir();
  const { data, upload } = await pacedUpload(site, httpPort, `${tmp.path}/big.bin`, 6 << 20, [
    "-v",
  ]);

  const exited = site.killSlave("s1", "SIGTERM");
  // While it drains, the slave refuses new transfers with a clear reason.
  await poll(
    async () =>
      /Stopping: no new transfers; waiting up to 30 s for 1 running/.test(await site.log("s1"))
        ? true
        : undefined,
    { describe: () => "the slave to start draining" },
  );
  const refused = await curl([
    ...CURL_PRET,
    "-v",
    site.url("/other.bin"),
    "-T",
    `${tmp.path}/big.bin`,
  ]);
  assert.notEqual(refused.code, 0, describeRun("curl upload during the stop", refused));
  assert.match(refused.stderr, /< 450 .*stopping/, describeRun("refusal", refused));

  const r = await upload;
  assert.equal(r.code, 0, describeRun("curl upload", r));
  assert.match(r.stderr, /< 226 /, describeRun("curl upload", r));
  assert.deepEqual(await Deno.readFile(`${site.slaveRoot("s1")}/big.bin`), data, "every byte");
  const status = await exited;
  assert.equal(status?.code, 0, await site.log("s1"));
  const master = await poll(async () => {
    const text = await site.log("master");
    return /Slave s1 left/.test(text) ? text : undefined;
  }, { describe: () => "the master to log that s1 left" });
  assert.doesNotMatch(master, /Slave s1 disconnected/);
  assert.doesNotMatch(await site.log("s1"), / ERROR /);
});

/**
 * Starts a curl upload of `size` random bytes to /big.bin at 2 MB/s and returns once the status
 * API lists it with bytes moved (so a signal sent next lands mid-transfer).
 */
async function pacedUpload(
  site: Site,
  httpPort: number,
  file: string,
  size: number,
  curlArgs: string[] = [],
) {
  const data = randomBytes(size);
  await Deno.writeFile(file, data);
  const upload = curl([
    ...CURL_PRET,
    ...curlArgs,
    "--limit-rate",
    "2M",
    "-T",
    file,
    site.url("/big.bin"),
  ]);
  await poll(async () => {
    const r = await fetch(`http://127.0.0.1:${httpPort}/status.json`);
    const s = await r.json() as { active: { path: string; bytes: number }[] };
    return s.active.some((t) => t.path === "/big.bin" && t.bytes > 0) ? true : undefined;
  }, { intervalMs: 50, describe: () => "the upload to be running" });
  return { data, upload };
}
