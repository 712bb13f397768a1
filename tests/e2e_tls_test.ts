/**
 * FTPS end to end: explicit (AUTH TLS) and implicit TLS on the control channel, TLS data
 * connections terminated on the slaves (passive and active), the `tls = "required"` policy,
 * openssl s_client's STARTTLS, a wire capture showing no plaintext on control, data and link,
 * and session resumption of the control connection's TLS session on a slave's data connection.
 */

import assert from "node:assert/strict";
import { RecordingProxy } from "../testing/recording_proxy.ts";
import {
  curl,
  CURL_BASE,
  describeRun,
  freePort,
  FtpControl,
  makeSite,
  randomBytes,
  run,
  sameFile,
  sha256,
  slavesHolding,
  tempDir,
} from "../testing/mod.ts";

const FTPS = [...CURL_BASE, "--ssl-reqd", "-k", "--ftp-pret", "--no-ftp-skip-pasv-ip"];

Deno.test("FTPS: curl through slaves, passive and active, listings, resumption", async (t) => {
  await using site = await makeSite({
    slaves: [{ name: "s2", address: "127.0.0.2" }, { name: "s3", address: "127.0.0.3" }],
  });
  await using tmp = await tempDir();
  const src = `${tmp.path}/up.bin`;
  await Deno.writeFile(src, randomBytes(2_000_000));

  await t.step("passive upload and download through a slave", async () => {
    const up = await curl([...FTPS, "-v", "-T", src, site.url("/tls/up.bin"), "--ftp-create-dirs"]);
    assert.ok(up.success, describeRun("curl ftps upload", up) + (await site.logs(3000)));
    assert.match(up.stderr, /< 226 Transfer complete: .* via s\d, TLSv1\.[23]/);
    const out = `${tmp.path}/down.bin`;
    const down = await curl([...FTPS, "-v", "-o", out, site.url("/tls/up.bin")]);
    assert.ok(down.success, describeRun("curl ftps download", down));
    assert.ok(await sameFile(src, out), "downloaded bytes differ");
    const holders = await slavesHolding(site, "tls/up.bin");
    assert.equal(holders.length, 1);
    // curl offers the control connection's session on the data connection; with the OpenSSL
    // engine the slave resumes it (the master shares its ticket keys over the link).
    if (/OpenSSL engine/.test(await site.log("master"))) {
      assert.match(down.stderr, /\(TLS session resumed\)/, "slave should resume the session");
    }
  });

  await t.step("active mode: the slave dials the client and is the TLS server", async () => {
    // curl 7.88's active FTPS fails on its own side ("sa_addr inet_ntop() failed"), so lftp
    // drives active mode here.
    const out = `${tmp.path}/act.out`;
    const r = await run("lftp", [
      "-u",
      `${site.user},${site.pass}`,
      "-p",
      String(site.ftpPort),
      "-e",
      [
        "set ftp:ssl-force true",
        "set ftp:ssl-protect-data true",
        "set ssl:verify-certificate no",
        "set ftp:passive-mode false",
        "set net:max-retries 1",
        "set net:timeout 10",
        `put ${src} -o /tls/act.bin`,
        `get /tls/act.bin -o ${out}`,
        "bye",
      ].join("; "),
      "127.0.0.1",
    ], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, describeRun("lftp active ftps", r) + (await site.logs(3000)));
    assert.ok(await sameFile(src, out), "active-mode bytes differ");
    assert.match(await site.log("master"), /RETR \S+ \/tls\/act\.bin \d+ bytes/);
  });

  await t.step("listings the master serves are TLS too", async () => {
    const list = await curl([...FTPS, "-l", site.url("/tls/")]);
    assert.ok(list.success, describeRun("curl ftps NLST", list));
    assert.deepEqual(list.stdout.trim().split(/\r?\n/).sort(), ["act.bin", "up.bin"]);
  });

  await t.step("openssl s_client -starttls ftp completes a handshake", async () => {
    const r = await run("openssl", [
      "s_client",
      "-starttls",
      "ftp",
      "-connect",
      `127.0.0.1:${site.ftpPort}`,
      "-brief",
    ], { stdin: "QUIT\r\n", timeoutMs: 20_000 });
    const out = r.stdout + r.stderr;
    assert.match(out, /Protocol version: TLSv1\.[23]/, describeRun("openssl s_client", r));
  });
});

Deno.test("FTPS: tls = required refuses plain logins and unprotected data", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s2", address: "127.0.0.2" }],
    masterExtra: `tls = "required"`,
  });
  await using plain = await FtpControl.connect({ host: "127.0.0.1", port: site.ftpPort });
  const user = await plain.send(`USER ${site.user}`);
  assert.equal(user.code, 530, user.lines.join(" | "));
  assert.match(user.text, /AUTH TLS/);

  await using ftp = await FtpControl.connect({ host: "127.0.0.1", port: site.ftpPort });
  const cert = await Deno.readTextFile(`${site.masterDataDir}/tls/cert.pem`);
  await ftp.startTls([cert]);
  assert.equal((await ftp.send(`USER ${site.user}`)).code, 331);
  assert.equal((await ftp.send(`PASS ${site.pass}`)).code, 230);
  assert.equal((await ftp.send("PROT C")).code, 534);
  await ftp.send("PRET LIST");
  await ftp.send("PASV");
  const list = await ftp.send("LIST");
  assert.equal(list.code, 521, list.lines.join(" | "));
  assert.match(list.text, /PROT P/);

  await using tmp = await tempDir();
  const src = `${tmp.path}/r.bin`;
  await Deno.writeFile(src, randomBytes(100_000));
  const up = await curl([...FTPS, "-T", src, site.url("/r.bin")]);
  assert.ok(up.success, describeRun("curl ftps upload with tls = required", up));
  const noTls = await curl([...CURL_BASE, "--ftp-pret", site.url("/")]);
  assert.ok(!noTls.success, "a plain client must not log in");
});

Deno.test("FTPS: implicit TLS on its own port", async () => {
  const implicitPort = freePort();
  await using site = await makeSite({
    slaves: [{ name: "s2", address: "127.0.0.2" }],
    masterExtra: `implicit_tls_listen = "127.0.0.1:${implicitPort}"`,
  });
  await using tmp = await tempDir();
  const src = `${tmp.path}/i.bin`;
  await Deno.writeFile(src, randomBytes(300_000));
  const url = `ftps://${site.user}:${site.pass}@127.0.0.1:${implicitPort}/i.bin`;
  const up = await curl([...FTPS, "-T", src, url]);
  assert.ok(up.success, describeRun("curl implicit ftps upload", up) + (await site.logs(3000)));
  const out = `${tmp.path}/i.out`;
  const down = await curl([...FTPS, "-o", out, url]);
  assert.ok(down.success, describeRun("curl implicit ftps download", down));
  assert.ok(await sameFile(src, out));
});

Deno.test("FTPS: nothing readable on the wire (control, slave data, slave link)", async () => {
  const linkProxyPort = freePort();
  let linkTarget = 0;
  await using linkProxy = new RecordingProxy(
    "127.0.0.1",
    linkProxyPort,
    () => ({ hostname: "127.0.0.1", port: linkTarget }),
  );
  await using site = await makeSite({
    slaves: [{
      name: "capture-slave",
      address: "127.0.0.2",
      publicAddress: "127.0.0.9",
      masterAddress: (linkPort) => {
        linkTarget = linkPort;
        return `127.0.0.1:${linkProxyPort}`;
      },
    }],
    passivePorts: 4,
  });
  // Clients reach the slave's data ports through recording proxies on 127.0.0.9.
  const range = site.slavePassiveRange("capture-slave");
  const dataProxies: RecordingProxy[] = [];
  for (let p = range.from; p <= range.to; p++) {
    dataProxies.push(
      new RecordingProxy("127.0.0.9", p, () => ({ hostname: "127.0.0.2", port: p })),
    );
  }
  await using control = new RecordingProxy(
    "127.0.0.1",
    0,
    () => ({ hostname: "127.0.0.1", port: site.ftpPort }),
  );
  try {
    await using tmp = await tempDir();
    const secret = randomBytes(400_000);
    const src = `${tmp.path}/secret.bin`;
    await Deno.writeFile(src, secret);
    const via = (name: string) =>
      `ftp://${site.user}:${site.pass}@127.0.0.1:${control.port}/${name}`;
    const sawData = (bytes: Uint8Array) =>
      dataProxies.some((p) => p.saw(bytes.subarray(1000, 1064)));

    // Plain FTP first: the capture does see the bytes and the password (the test can fail).
    const plain = await curl([
      ...CURL_BASE,
      "--ftp-pret",
      "--no-ftp-skip-pasv-ip",
      "-T",
      src,
      via("plain.bin"),
    ]);
    assert.ok(plain.success, describeRun("plain upload", plain) + (await site.logs(3000)));
    assert.ok(control.saw(`PASS ${site.pass}`), "a plain login is visible");
    assert.ok(sawData(secret), "plain data is visible");

    const other = randomBytes(400_000);
    await Deno.writeFile(src, other);
    const up = await curl([...FTPS, "-T", src, via("secure-file.bin")]);
    assert.ok(up.success, describeRun("ftps upload", up));
    const out = `${tmp.path}/back.bin`;
    const down = await curl([...FTPS, "-o", out, via("secure-file.bin")]);
    assert.ok(down.success, describeRun("ftps download", down));
    assert.equal(await sha256(await Deno.readFile(out)), await sha256(other));
    assert.ok(!sawData(other), "TLS data must not be readable on the wire");
    assert.ok(!control.saw("secure-file.bin"), "TLS control must not be readable on the wire");
    assert.ok(linkProxy.bytes.length > 0, "the link went through the recording proxy");
    assert.ok(!linkProxy.saw("capture-slave"), "the link must not show the slave's name");
    assert.ok(!linkProxy.saw("secure-file.bin"), "the link must not show file names");
  } finally {
    for (const p of dataProxies) await p[Symbol.asyncDispose]();
  }
});

Deno.test("FTPS: secure FXP between two drftpd sites with CPSV and SSCN", async () => {
  const masterExtra = `fxp = "allow"`;
  await using a = await makeSite({ slaves: [{ name: "a1", address: "127.0.0.2" }], masterExtra });
  await using b = await makeSite({ slaves: [{ name: "b1", address: "127.0.0.3" }], masterExtra });
  const bytes = randomBytes(700_000);
  const certA = await Deno.readTextFile(`${a.masterDataDir}/tls/cert.pem`);
  const certB = await Deno.readTextFile(`${b.masterDataDir}/tls/cert.pem`);
  const login = async (site: typeof a, cert: string) => {
    const c = await FtpControl.connect({ host: "127.0.0.1", port: site.ftpPort });
    await c.startTls([cert]);
    assert.equal((await c.send(`USER ${site.user}`)).code, 331);
    assert.equal((await c.send(`PASS ${site.pass}`)).code, 230);
    assert.equal((await c.send("PBSZ 0")).code, 200);
    assert.equal((await c.send("PROT P")).code, 200);
    assert.equal((await c.send("TYPE I")).code, 200);
    return c;
  };
  // Seed the source site over plain FTP.
  {
    await using seed = await a.control();
    await seed.store("/fxp.bin", bytes);
  }
  for (const mode of ["CPSV", "SSCN"] as const) {
    await using src = await login(a, certA);
    await using dst = await login(b, certB);
    const target = `/fxp-${mode}.bin`;
    // The passive side must be the TLS client: CPSV, or SSCN ON + PASV.
    assert.equal((await src.send("PRET RETR /fxp.bin")).code, 200);
    if (mode === "SSCN") assert.match((await src.send("SSCN ON")).text, /CLIENT/);
    const pasv = await src.send(mode === "CPSV" ? "CPSV" : "PASV");
    assert.equal(pasv.code, 227, pasv.lines.join(" | "));
    const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(pasv.text)!;
    const port = await dst.send(`PORT ${m.slice(1, 7).join(",")}`);
    assert.equal(port.code, 200, port.lines.join(" | "));
    assert.equal((await dst.send(`STOR ${target}`)).code, 150);
    assert.equal((await src.send("RETR /fxp.bin")).code, 150);
    const [r1, r2] = await Promise.all([src.read(), dst.read()]);
    assert.equal(r1.code, 226, `source: ${r1.lines.join(" | ")}`);
    assert.equal(r2.code, 226, `destination: ${r2.lines.join(" | ")}`);
    assert.match(r2.text, /TLSv1\.[23]/);
    await using check = await b.control();
    const { data } = await check.retrieve(target);
    assert.equal(await sha256(data), await sha256(bytes), `${mode} FXP bytes differ`);
  }
});
