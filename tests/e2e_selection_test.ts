/**
 * `[selection]` with three slaves: a path rule (`/hd/**` only on sel3) is obeyed by uploads (PRET,
 * PASV without PRET, active mode) and a rule excluding a slave is obeyed by replication and
 * healing; SITE COPY refuses an excluded target; `min_free` keeps uploads off a slave short of
 * space (its disk reports rewritten on the link); SITE SLAVESELECT shows each slave's score or
 * why it is out.
 */
import assert from "node:assert/strict";
import { concat, copy, writeAll } from "../shared/bytes.ts";
import { closeQuietly } from "../shared/net.ts";
import {
  CURL_BASE,
  CURL_PRET,
  curlUpload,
  makeSite,
  poll,
  randomBytes,
  sameFile,
  slavesHolding,
  tempDir,
} from "../testing/mod.ts";

const RULES = `
[selection]
[[selection.rules]]
path = "/hd/**"
only = ["sel3"]
[[selection.rules]]
path = "/archive/**"
exclude = ["sel2"]
[[selection.rules]]
path = "/one/**"
only = ["sel1"]
[[replication]]
path = "/archive/**"
copies = 2
`;

Deno.test("selection: path rules hold for uploads and replication; SITE SLAVESELECT and SITE COPY", async () => {
  await using site = await makeSite({
    slaves: [
      { name: "sel1", address: "127.0.0.2" },
      { name: "sel2", address: "127.0.0.3" },
      { name: "sel3", address: "127.0.0.4" },
    ],
    masterExtra: RULES,
    slavesExtra: "heal_after = 2",
  });
  await using tmp = await tempDir();
  const put = (path: string, flags: string[]) =>
    curlUpload(site, path, { dir: tmp.path, size: 100_000, flags });
  // Uploads under /hd/** land on sel3 only, however the data connection is made: PRET + PASV
  // (the slave is chosen at PASV), PASV without PRET and active mode (chosen at STOR).
  const hd: [string, string[]][] = [
    ["/hd/a1.bin", CURL_PRET],
    ["/hd/a2.bin", CURL_PRET],
    ["/hd/a3.bin", CURL_PRET],
    ["/hd/b1.bin", CURL_BASE],
    ["/hd/c1.bin", [...CURL_BASE, "-P", "127.0.0.1"]],
  ];
  for (const [path, flags] of hd) {
    const src = await put(path, flags);
    assert.deepEqual(await slavesHolding(site, path.slice(1)), ["sel3"], path);
    assert.ok(await sameFile(src, `${site.slaveRoot("sel3")}${path}`), path);
  }
  // Outside every rule, uploads spread over all three (sel3 is not the only one used).
  const spread = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const path = `/free/f${i}.bin`;
    await put(path, CURL_PRET);
    for (const name of await slavesHolding(site, path.slice(1))) spread.add(name);
  }
  assert.ok(spread.size >= 2, `uploads outside the rules use several slaves: ${[...spread]}`);

  // Replication under /archive/** (copies = 2, sel2 excluded): every file ends on sel1 and sel3.
  const archived = [];
  for (let i = 0; i < 3; i++) archived.push(await put(`/archive/r${i}.bin`, CURL_PRET));
  for (let i = 0; i < 3; i++) {
    const rel = `archive/r${i}.bin`;
    const holders = await poll(async () => {
      const h = await slavesHolding(site, rel);
      return h.length >= 2 ? h : undefined;
    }, {
      timeoutMs: 30_000,
      describe: async () => `two copies of ${rel}\n${await site.logs(4000)}`,
    });
    assert.deepEqual(holders.sort(), ["sel1", "sel3"], rel);
    for (const name of holders) {
      assert.ok(
        await sameFile(archived[i]!, `${site.slaveRoot(name)}/${rel}`),
        `${rel} on ${name}`,
      );
    }
  }

  await using ftp = await site.control();
  // SITE SLAVESELECT: the rule's slave with its score and terms, the others with the reason.
  const upHd = await ftp.send("SITE SLAVESELECT up /hd/new.bin");
  assert.equal(upHd.code, 200, upHd.text);
  const line = (r: { lines: string[] }, name: string) =>
    r.lines.find((l) => l.replace(/^200[- ]/, "").trimStart().startsWith(`${name} `)) ?? "";
  assert.match(upHd.lines[0]!, /upload of \/hd\/new\.bin: rule 1 \(\/hd\/\*\*: only sel3\)/);
  assert.match(
    line(upHd, "sel3"),
    /sel3 score=-?\d+\.\d{3} \(chosen\) free=\d\.\d{3} \(\d+ bytes\) transfers=\d+ throughput=\d\.\d{3} \(\d+ bytes\/s\)/,
  );
  assert.match(line(upHd, "sel1"), /sel1 excluded: excluded by rule 1 \(\/hd\/\*\*\)/);
  assert.match(line(upHd, "sel2"), /sel2 excluded: excluded by rule 1 \(\/hd\/\*\*\)/);
  assert.match(upHd.lines.at(-1)!, /^200 3 slaves known, 1 may serve$/);
  // Recent throughput: sel3 moved the /hd/ uploads within the last 30 s.
  assert.match(line(upHd, "sel3"), /\((?!0 )\d+ bytes\/s\)$/, "sel3's recent throughput");

  const downHd = await ftp.send("SITE SLAVESELECT down /hd/a1.bin");
  assert.equal(downHd.code, 200, downHd.text);
  assert.match(downHd.lines[0]!, /download of \/hd\/a1\.bin: no path rule/);
  assert.match(line(downHd, "sel3"), /\(chosen\)/);
  assert.match(line(downHd, "sel1"), /sel1 excluded: not a holder/);

  const upArchive = await ftp.send("SITE SLAVESELECT UP /archive/x.bin");
  assert.match(line(upArchive, "sel2"), /sel2 excluded: excluded by rule 2 \(\/archive\/\*\*\)/);
  assert.match(upArchive.lines.at(-1)!, /2 may serve$/);

  assert.equal((await ftp.send("SITE SLAVESELECT down /hd/missing.bin")).code, 550);
  assert.equal((await ftp.send("SITE SLAVESELECT sideways /hd/a1.bin")).code, 501);
  assert.equal((await ftp.send("SITE SLAVESELECT up")).code, 501);

  // PASV without PRET picks a slave from the session's hint (its cwd /one: sel1); a STOR of a path
  // whose rule excludes that slave is refused, naming the rule, and nothing is stored.
  await ftp.expect("MKD /one", 257);
  await ftp.expect("CWD /one", 250);
  const { host, port } = await ftp.pasv();
  assert.equal(host, "127.0.0.2", "PASV without PRET in /one answered by sel1");
  const conn = await Deno.connect({ hostname: host, port });
  const refused = await ftp.send("STOR /hd/nopret.bin");
  conn.close();
  assert.equal(refused.code, 425, refused.text);
  assert.match(refused.text, /on sel1, which answered PASV: excluded by rule 1 \(\/hd\/\*\*\)/);
  assert.deepEqual(await slavesHolding(site, "hd/nopret.bin"), []);
  // From its own folder the same upload goes to sel3.
  await ftp.expect("CWD /hd", 250);
  const there = await ftp.pasv();
  assert.equal(there.host, "127.0.0.4", "PASV without PRET in /hd answered by sel3");
  await ftp.transfer(there, "STOR nopret.bin", { upload: randomBytes(1000) });
  assert.deepEqual(await slavesHolding(site, "hd/nopret.bin"), ["sel3"]);

  // SITE COPY to a slave the rule excludes is refused, naming the rule; nothing lands there.
  const copy = await ftp.send("SITE COPY /hd/a1.bin sel1");
  assert.equal(copy.code, 450, copy.text);
  assert.match(copy.text, /sel1 may not take \/hd\/a1\.bin: excluded by rule 1 \(\/hd\/\*\*\)/);
  assert.deepEqual(await slavesHolding(site, "hd/a1.bin"), ["sel3"]);

  // Healing obeys the rules too: sel1 gone for heal_after, the archive files' only other slave is
  // sel2, which the rule excludes, so no copy is made (the master logs that none may take it).
  await site.killSlave("sel1", "SIGKILL");
  await site.waitSlaves(["sel1"], "offline", 30_000);
  const noTarget = (i: number) =>
    `/archive/r${i}.bin: 1 of its 1 missing copies have no slave that may take them`;
  await poll(async () => {
    const log = await site.log("master");
    return [0, 1, 2].every((i) => log.includes(noTarget(i))) || undefined;
  }, {
    timeoutMs: 30_000,
    describe: async () => `healing finds no slave\n${await site.logs(4000)}`,
  });
  for (let i = 0; i < 3; i++) {
    assert.ok(!(await slavesHolding(site, `archive/r${i}.bin`)).includes("sel2"), `r${i} on sel2`);
  }
});

/**
 * A TCP pipe between one slave and the master's plain link that rewrites the slave's `disk`
 * reports to `free` bytes: a slave short of space without filling a disk. `target` gives the
 * master's link port once it is known.
 */
function diskRewriter(free: number, target: () => number): AsyncDisposable & { port: number } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const pipes = new Set<Promise<unknown>>();
  const serve = async (slave: Deno.Conn) => {
    using master = await Deno.connect({ hostname: "127.0.0.1", port: target() });
    conns.add(master);
    await Promise.allSettled([
      copy(master, slave).finally(() => slave.closeWrite().catch(() => {})),
      rewriteFrames(slave, master, free),
    ]);
  };
  const accepting = (async () => {
    for await (const slave of listener) {
      conns.add(slave);
      const p = serve(slave).catch(() => {}).finally(() => closeQuietly(slave));
      pipes.add(p);
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      closeQuietly(listener);
      for (const c of conns) closeQuietly(c);
      await Promise.allSettled([accepting, ...pipes]);
    },
  };
}

/** Forwards link frames (4-byte length + JSON) from `from` to `to`, `disk` ones with `free`. */
async function rewriteFrames(from: Deno.Conn, to: Deno.Conn, free: number): Promise<void> {
  let pending: Uint8Array = new Uint8Array(0);
  const chunk = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await from.read(chunk);
    if (n === null) break;
    pending = concat([pending, chunk.subarray(0, n)]);
    while (pending.length >= 4) {
      const len = new DataView(pending.buffer, pending.byteOffset).getUint32(0);
      if (pending.length < 4 + len) break;
      let body = pending.subarray(4, 4 + len);
      const msg = JSON.parse(new TextDecoder().decode(body));
      if (msg.type === "disk") body = new TextEncoder().encode(JSON.stringify({ ...msg, free }));
      const frame = new Uint8Array(4 + body.length);
      new DataView(frame.buffer).setUint32(0, body.length);
      frame.set(body, 4);
      await writeAll(to, frame);
      pending = pending.slice(4 + len);
    }
  }
  await to.closeWrite().catch(() => {});
}

Deno.test("selection: min_free keeps uploads off a slave short of space; SITE SLAVESELECT says so", async () => {
  let linkPort = 0;
  await using proxy = diskRewriter(1000, () => linkPort);
  await using site = await makeSite({
    slaves: [
      {
        name: "m1",
        address: "127.0.0.2",
        extra: "tls = false",
        masterAddress: (port) => {
          linkPort = port;
          return `127.0.0.1:${proxy.port}`;
        },
      },
      { name: "m2", address: "127.0.0.3", extra: "tls = false" },
      { name: "m3", address: "127.0.0.4", extra: "tls = false" },
    ],
    slavesExtra: "tls = false",
  });
  await using ftp = await site.control();
  const r = await ftp.send("SITE SLAVESELECT up /space/f.bin");
  assert.equal(r.code, 200, r.text);
  assert.ok(
    r.lines.some((l) => / m1 excluded: below min_free \(1000 < 67108864 bytes free\)$/.test(l)),
    r.text,
  );
  assert.match(r.lines.at(-1)!, /3 slaves known, 2 may serve$/);
  // Uploads go to the two others, never to m1.
  await ftp.expect("MKD /space", 257);
  const used = new Set<string>();
  for (let i = 0; i < 6; i++) {
    const path = `/space/f${i}.bin`;
    await ftp.store(path, randomBytes(20_000));
    const holders = await slavesHolding(site, path.slice(1));
    assert.equal(holders.length, 1, `${path} on ${holders}`);
    assert.notEqual(holders[0], "m1", `${path} stored on m1, below min_free`);
    used.add(holders[0]!);
  }
  assert.deepEqual([...used].sort(), ["m2", "m3"]);
});
