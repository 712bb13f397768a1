/**
 * `[[replication]]` with three slaves and `copies = 2` on `/archive/**`: an upload there ends up
 * on exactly two slave roots with equal bytes; an upload elsewhere stays on one.
 */
import assert from "node:assert/strict";
import {
  archiveRule,
  curl,
  CURL_PRET,
  curlUpload,
  describeRun,
  freePort,
  loopbackSlaves,
  makeSite,
  poll,
  randomBytes,
  sameFile,
  slavesHolding,
  tempDir,
} from "../testing/mod.ts";

Deno.test("replication: copies = 2 under /archive/**, one copy elsewhere", async () => {
  const httpPort = freePort();
  await using site = await makeSite({
    http: `127.0.0.1:${httpPort}`,
    // 20 sessions of one address prepare their passive ports at once below: the per-address
    // quota (a quarter of the range) must let them
    passivePorts: 100,
    slaves: loopbackSlaves("r1", "r2", "r3"),
    masterExtra: archiveRule(2),
  });
  await using tmp = await tempDir();
  const put = (path: string, size: number) => curlUpload(site, path, { dir: tmp.path, size });
  const plain = await put("/other/b.bin", 200_000);
  const archived = await put("/archive/x/a.bin", 2_000_000);

  const holders = await poll(async () => {
    const h = await slavesHolding(site, "archive/x/a.bin");
    return h.length >= 2 ? h : undefined;
  }, { timeoutMs: 30_000, describe: async () => `two copies\n${await site.logs(4000)}` });
  assert.equal(holders.length, 2, `exactly two copies: ${holders}`);
  // `/metrics` counts the copy and shows an empty queue once it is done.
  await poll(async () => {
    const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    return /^drftpd_replication_copies_total\{result="complete"\} 1$/m.test(text) &&
        /^drftpd_replication_queue 0$/m.test(text) && /^drftpd_replication_running 0$/m.test(text)
      ? true
      : undefined;
  }, { describe: () => "/metrics to count one replication copy" });
  for (const name of holders) {
    assert.ok(await sameFile(archived, `${site.slaveRoot(name)}/archive/x/a.bin`), name);
  }
  // 20 concurrent downloads of the two-copy file are spread over both holders (the sessions
  // log in one after the other; the downloads then run at once).
  const address: Record<string, string> = {
    "127.0.0.2": "r1",
    "127.0.0.3": "r2",
    "127.0.0.4": "r3",
  };
  const sessions = [];
  for (let i = 0; i < 20; i++) sessions.push(await site.control());
  try {
    const got = await Promise.all(sessions.map((ftp) => ftp.retrieve("/archive/x/a.bin")));
    const want = await Deno.readFile(archived);
    const served = new Map<string, number>();
    for (const [i, { data, host }] of got.entries()) {
      assert.deepEqual(data, want, `download ${i} bytes`);
      const name = address[host] ?? host;
      served.set(name, (served.get(name) ?? 0) + 1);
    }
    assert.deepEqual([...served.keys()].sort(), [...holders].sort(), `spread: ${[...served]}`);
  } finally {
    for (const ftp of sessions) ftp.close();
  }

  const other = await slavesHolding(site, "other/b.bin");
  assert.equal(other.length, 1, `outside the rule: one copy (${other})`);
  assert.ok(await sameFile(plain, `${site.slaveRoot(other[0]!)}/other/b.bin`));
});

Deno.test("replication heals: a killed holder's files are copied elsewhere, then trimmed when it returns", async () => {
  await using site = await makeSite({
    slaves: loopbackSlaves("h1", "h2", "h3"),
    masterExtra: archiveRule(2),
    slavesExtra: "heal_after = 2",
  });
  await using tmp = await tempDir();
  const src = `${tmp.path}/h.bin`;
  await Deno.writeFile(src, randomBytes(700_000));
  const up = await curl([...CURL_PRET, "--ftp-create-dirs", "-T", src, site.url("/archive/h.bin")]);
  assert.ok(up.success, describeRun("upload", up) + (await site.logs(4000)));
  const onDisk = () => slavesHolding(site, "archive/h.bin");
  const first = await poll(async () => {
    const h = await onDisk();
    return h.length === 2 ? h : undefined;
  }, { timeoutMs: 30_000, describe: async () => `two copies\n${await site.logs(4000)}` });
  const [victim, survivor] = first as [string, string];
  const third = ["h1", "h2", "h3"].find((n) => !first.includes(n))!;

  await site.killSlave(victim, "SIGKILL");
  await site.waitSlaves([victim], "offline", 30_000);
  // The file still downloads from the other holder.
  const out = `${tmp.path}/h.out`;
  const down = await curl([
    ...CURL_PRET,
    "--max-time",
    "20",
    "-o",
    out,
    site.url("/archive/h.bin"),
  ]);
  assert.ok(down.success, describeRun(`download from ${survivor}`, down));
  assert.ok(await sameFile(src, out));

  // After heal_after, a new copy appears on the third slave.
  await poll(async () => (await onDisk()).includes(third) ? true : undefined, {
    timeoutMs: 30_000,
    describe: async () => `a copy on ${third}\n${await site.logs(4000)}`,
  });
  assert.ok(await sameFile(src, `${site.slaveRoot(third)}/archive/h.bin`));

  // The killed slave returns: the file is back to two copies.
  await site.startSlave(victim);
  await poll(async () => (await onDisk()).length === 2 ? true : undefined, {
    timeoutMs: 30_000,
    describe: async () => `back to two copies (${await onDisk()})\n${await site.logs(4000)}`,
  });
  for (const name of await onDisk()) {
    assert.ok(await sameFile(src, `${site.slaveRoot(name)}/archive/h.bin`), name);
  }
});
