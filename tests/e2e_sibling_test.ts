/**
 * Sibling streaming, end to end: two slaves on distinct addresses (s2 on 127.0.0.2, s3 on
 * 127.0.0.3), a client without PRET whose PASV went to s2 (it asked SIZE of a file only s2 has),
 * then RETR of a file only s3 holds. s2 fetches the bytes from s3 over the slave-to-slave link
 * (TLS, as the link is) and streams them to the client as they arrive: bytes identical, the master
 * relays none, the 226 says "via sibling slave s3".
 *
 * - stock ftplib, plain and FTP_TLS + prot_p, whole file and REST;
 * - a `[[replication]]` rule that wants a second copy: s2 keeps the bytes and becomes a holder
 *   (with the zero-copy data engine, which streams through the native loop and says so);
 * - ABOR mid-stream: 426 and 226, and the holder's send ends too;
 * - s3 SIGKILLed mid-stream: 426, never 226, and no temporary file stays on s2; s2 SIGKILLed
 *   mid-stream: 426, and what it had written of its copy is gone once it is back.
 */
import assert from "node:assert/strict";
import {
  aborReplies,
  curl,
  CURL_PRET,
  describeRun,
  freePort,
  FtpControl,
  FTPLIB_LOGIN,
  ftplibConfig,
  makeSite,
  parse227,
  parsePrometheus,
  poll,
  prometheusPython,
  randomBytes,
  readAll,
  run,
  type Site,
  slavesHolding,
  tempDir,
} from "../testing/mod.ts";

const S2 = "127.0.0.2";
const S3 = "127.0.0.3";

/**
 * A site whose s3 holds `/keep/only3.bin` (uploaded while s2 was offline, so its CRC32 is known
 * and no copy was made) and whose s2 holds `/only2.bin` (a SIZE of it makes PASV choose s2).
 */
async function siblingSite(
  dir: string,
  options: { masterExtra?: string; env?: Record<string, string>; only3?: Uint8Array } = {},
): Promise<{ site: Site; only3: Uint8Array; metrics: string }> {
  const http = freePort();
  const site = await makeSite({
    slaves: [
      { name: "s2", address: S2, start: false },
      { name: "s3", address: S3 },
    ],
    http: `127.0.0.1:${http}`,
    logLevel: "debug",
    // s3 takes part in no replication copy: when s2 comes online, replication cannot copy
    // /keep/only3.bin to it, so only a sibling send that keeps the bytes makes s2 a holder.
    slavesExtra: "[slaves.copies]\ns3 = 0",
    ...(options.masterExtra ? { masterExtra: options.masterExtra } : {}),
    ...(options.env ? { env: options.env } : {}),
  });
  try {
    const only3 = options.only3 ?? randomBytes(1_500_000 + 17);
    await Deno.writeFile(`${dir}/only3.bin`, only3);
    const up = await curl([
      ...CURL_PRET,
      "--ftp-create-dirs",
      "-T",
      `${dir}/only3.bin`,
      site.url("/keep/only3.bin"),
    ]);
    assert.ok(up.success, describeRun("upload to s3", up) + (await site.logs(4000)));
    await Deno.writeFile(`${site.slaveRoot("s2")}/only2.bin`, randomBytes(1000));
    await site.startSlave("s2");
    assert.deepEqual(await slavesHolding(site, "keep/only3.bin"), ["s3"]);
    return { site, only3, metrics: `http://127.0.0.1:${http}/metrics` };
  } catch (e) {
    await site[Symbol.asyncDispose]();
    throw e;
  }
}

async function assertNothingRelayed(metrics: string): Promise<void> {
  if (prometheusPython() === null) return;
  const samples = await parsePrometheus(await (await fetch(metrics)).text());
  const relayed = samples.filter((s) => s.name === "drftpd_relayed_bytes_total");
  assert.ok(relayed.length > 0, "drftpd_relayed_bytes_total is on /metrics");
  for (const s of relayed) assert.equal(s.value, 0, `relayed via ${s.labels.via}`);
  const sibling = samples.find((s) =>
    s.name === "drftpd_transfers_total" && s.labels.path === "sibling" &&
    s.labels.result === "complete" && s.labels.direction === "download"
  );
  assert.equal(sibling?.value, 4, "the four downloads are counted under the sibling path");
}

const SCRIPT = FTPLIB_LOGIN + `
out = {}
for name, rest in (("whole", None), ("rest", cfg["rest"])):
    ftp.size("/only2.bin")  # PASV goes to s2, which does not hold only3.bin
    with open(cfg["dst"] + "." + name, "wb") as f:
        out[name] = ftp.retrbinary("RETR /keep/only3.bin", f.write, rest=rest)
out["quit"] = ftp.quit()
print(json.dumps(out))
`;

async function ftplibSibling(site: Site, dir: string, only3: Uint8Array, tls: boolean) {
  const script = `${dir}/sibling.py`;
  await Deno.writeTextFile(script, SCRIPT);
  const dst = `${dir}/got-${tls ? "tls" : "plain"}`;
  const rest = 654_321;
  const cfg = ftplibConfig(site, tls, { dst, rest });
  const r = await run("python3", [script, JSON.stringify(cfg)], { timeoutMs: 90_000 });
  assert.ok(r.success, describeRun("python3 ftplib", r) + (await site.logs(6000)));
  const out = JSON.parse(r.stdout) as Record<string, string>;
  for (const name of ["whole", "rest"]) {
    assert.match(out[name]!, /^226 .* via s2.*; via sibling slave s3$/, `${name}: ${out[name]}`);
    if (tls) assert.match(out[name]!, /TLSv1\.[23]/);
  }
  assert.deepEqual(await Deno.readFile(`${dst}.whole`), only3, "whole file differs");
  assert.deepEqual(await Deno.readFile(`${dst}.rest`), only3.subarray(rest), "REST part differs");
  // s2 kept nothing: no rule asked for a copy.
  assert.deepEqual(await slavesHolding(site, "keep/only3.bin"), ["s3"]);
  assert.deepEqual([...Deno.readDirSync(site.slaveRoot("s2"))].map((e) => e.name), ["only2.bin"]);
}

Deno.test("sibling: ftplib without PRET gets a file only the other slave holds, plain and TLS", async (t) => {
  await using dir = await tempDir();
  const { site, only3, metrics } = await siblingSite(dir.path);
  await using _site = site;
  await t.step("ftplib", () => ftplibSibling(site, dir.path, only3, false));
  await t.step("ftplib FTP_TLS + prot_p", () => ftplibSibling(site, dir.path, only3, true));
  await assertNothingRelayed(metrics);
});

/**
 * PASV after SIZE of /only2.bin (so s2 answers), then RETR of /keep/only3.bin, whose 150 must
 * match `opening`: the data socket.
 */
async function retrViaS2(ftp: FtpControl, opening = /via s2 \(streamed from s3\)$/) {
  await ftp.expect("SIZE /only2.bin", 213);
  const { host, port } = parse227((await ftp.expect("PASV", 227)).text);
  assert.equal(host, S2);
  const data = await Deno.connect({ hostname: host, port });
  const r = await ftp.send("RETR /keep/only3.bin");
  assert.equal(r.code, 150, r.text);
  assert.match(r.text, opening);
  return data;
}

Deno.test("sibling: a rule that wants a copy makes s2 keep the bytes (zero-copy engine)", async () => {
  await using dir = await tempDir();
  const { site, only3 } = await siblingSite(dir.path, {
    masterExtra: '\n[[replication]]\npath = "/keep/**"\ncopies = 2\n',
    env: { DRFTPD_DATA_ENGINE: "zero_copy" },
  });
  await using _site = site;
  await using ftp = await site.control();
  {
    using data = await retrViaS2(ftp);
    assert.deepEqual(await readAll(data), only3);
  }
  const done = await ftp.read();
  assert.equal(done.code, 226, done.text + (await site.logs(4000)));
  assert.match(done.text, /; via sibling slave s3$/);
  assert.deepEqual(await slavesHolding(site, "keep/only3.bin"), ["s2", "s3"]);
  assert.deepEqual(await Deno.readFile(`${site.slaveRoot("s2")}/keep/only3.bin`), only3);
  assert.deepEqual([...Deno.readDirSync(`${site.slaveRoot("s2")}/keep`)].map((e) => e.name), [
    "only3.bin",
  ]);
  const s2log = await site.log("s2");
  if (/zero_copy/.test(s2log) && !/Zero-copy data engine unavailable/.test(s2log)) {
    assert.match(s2log, /the zero_copy engine has no socket-to-socket path: native loop/);
  }
  // Now a holder, s2 sends it directly.
  {
    using data = await retrViaS2(ftp, /via s2$/);
    assert.deepEqual(await readAll(data), only3);
  }
  const direct = await ftp.read();
  assert.equal(direct.code, 226, direct.text);
  assert.match(direct.text, /; direct$/);
});

/**
 * A RETR via s2 of a 256 MiB file only s3 holds (a rule makes s2 keep a copy, so it writes a
 * temporary file), `victim` SIGKILLed after the first MiB reached the client: the client gets
 * 426, never 226, and s2 is no holder.
 */
async function killMidStream(victim: "s2" | "s3"): Promise<void> {
  await using dir = await tempDir();
  // Far more than the socket buffers between s3, s2 and the client hold.
  const big = new Uint8Array(256 * 1024 * 1024);
  big.set(randomBytes(65536));
  const { site } = await siblingSite(dir.path, {
    masterExtra: '\n[[replication]]\npath = "/keep/**"\ncopies = 2\n',
    only3: big,
  });
  await using _site = site;
  await using ftp = await site.control();
  if (victim === "s3") {
    // ABOR mid-stream first: 426 then 226, and s3's send ends too (s2 dropped its connection).
    {
      using data = await retrViaS2(ftp);
      assert.notEqual(await data.read(new Uint8Array(65536)), null);
      await ftp.write("ABOR");
      assert.deepEqual(await aborReplies(ftp), [426, 226]);
    }
    await poll(async () => /\(transfer\) failed: /.test(await site.log("s3")) || undefined, {
      timeoutMs: 30_000,
      describe: () => site.log("s3"),
    });
    assert.deepEqual(await slavesHolding(site, "keep/only3.bin"), ["s3"], "no copy from an ABOR");
  }
  using data = await retrViaS2(ftp);
  const first = new Uint8Array(1024 * 1024);
  let got = 0;
  while (got < first.length) {
    const n = await data.read(first.subarray(got));
    assert.ok(n !== null, "bytes flow before a slave dies");
    got += n;
  }
  assert.deepEqual(first.subarray(0, 65536), big.subarray(0, 65536));
  await site.killSlave(victim, "SIGKILL");
  const rest = await readAll(data, big.length).catch(() => new Uint8Array());
  assert.ok(got + rest.length < big.length, "the stream was cut short");
  const end = await ftp.read();
  assert.equal(end.code, 426, end.text + (await site.logs(4000)));
  assert.deepEqual(await slavesHolding(site, "keep/only3.bin"), ["s3"], "s2 is no holder");
  // s3 killed: s2 removed what it had written of its copy before the 426. s2 killed: what it had
  // written is swept when it starts again, before it is online.
  const keepDir = `${site.slaveRoot("s2")}/keep`;
  if (victim === "s2") {
    const partial = [...Deno.readDirSync(keepDir)].map((e) => e.name);
    assert.ok(partial.some((n) => n.startsWith(".drftpd-copy.")), `s2 was writing: ${partial}`);
    await site.startSlave("s2");
  }
  const left = await Deno.stat(keepDir).then(() => [...Deno.readDirSync(keepDir)], () => []);
  assert.deepEqual(left, [], "no temporary file on s2");
  assert.equal((await ftp.send("NOOP")).code, 200, "the session goes on");
}

Deno.test("sibling: ABOR ends the holder's send; the holder SIGKILLed mid-stream gives 426", () =>
  killMidStream("s3"));

Deno.test("sibling: the streaming slave SIGKILLed mid-stream gives 426; its partial copy is swept", () =>
  killMidStream("s2"));
