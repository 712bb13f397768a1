/**
 * Smaller hardening items of issue 11 (point 6), each with its check:
 * - STAT before login does not tell the version;
 * - one client address, and one user from any addresses, holds at most a quarter of the passive
 *   range prepared but unused;
 * - a peer on the slave-link port that has not authenticated cannot make the master buffer a
 *   large frame: a length over the small pre-auth cap ends the connection at once.
 * (Dangling symlinks out of a slave's root: `shared/paths_test.ts`; AEAD-only TLS 1.2:
 * `shared/tls/tls_test.ts`.)
 */
import assert from "node:assert/strict";
import { FtpControl, makeSite, poll, readAll, run } from "../testing/mod.ts";
import { VERSION } from "../shared/version.ts";
import { deadline } from "../shared/timers.ts";

Deno.test("hardening: STAT before login, link frames before auth", async (t) => {
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1", extra: "tls = false" }],
    slavesExtra: "tls = false",
  });

  await t.step("STAT before login shows no version; after login it does", async () => {
    const anon = await FtpControl.connect({ host: site.host, port: site.ftpPort });
    const r = await anon.send("STAT");
    anon.close();
    assert.equal(r.code, 211, r.lines.join(" | "));
    assert.ok(!r.text.includes(VERSION), `version shown before login: ${r.lines.join(" | ")}`);
    await using ftp = await site.control();
    assert.ok((await ftp.send("STAT")).text.includes(VERSION));
  });

  await t.step(
    "an unauthenticated link peer announcing a 1 MiB frame is dropped at once",
    async () => {
      const linkPort = Number(
        /Slave link listening on [\d.]+:(\d+)/.exec(await site.log("master"))?.[1],
      );
      assert.ok(linkPort > 0, "link port in the master's log");
      const conn = await Deno.connect({ hostname: site.host, port: linkPort });
      try {
        // the master's hello frame
        const head = new Uint8Array(4);
        let got = 0;
        while (got < 4) got += (await conn.read(head.subarray(got))) ?? 0;
        const len = new DataView(head.buffer).getUint32(0);
        const hello = new Uint8Array(len);
        got = 0;
        while (got < len) got += (await conn.read(hello.subarray(got))) ?? 0;
        assert.match(new TextDecoder().decode(hello), /"hello"/);
        // announce a 1 MiB frame and send nothing more: the master must not wait for it
        const big = new Uint8Array(4);
        new DataView(big.buffer).setUint32(0, 1024 * 1024);
        await conn.write(big);
        await deadline(readAll(conn).catch(() => new Uint8Array()), {
          ms: 5000,
          what: "the master to drop the link",
        });
      } finally {
        conn.close();
      }
      await poll(
        async () =>
          /Frame too large: 1048576 bytes \(limit 4096\)/.test(await site.log("master")) ||
          undefined,
        {
          timeoutMs: 5000,
          describe: async () => `the master to log the refused frame\n${await site.log("master")}`,
        },
      );
    },
  );

  await t.step("TLS 1.2 offers AEAD suites only (no CBC, no SHA-1 MAC)", async () => {
    const handshake = (cipher: string) =>
      run("openssl", [
        "s_client",
        "-connect",
        `${site.host}:${site.ftpPort}`,
        "-starttls",
        "ftp",
        "-tls1_2",
        "-cipher",
        cipher,
      ], { timeoutMs: 20_000 });
    const cbc = await handshake(
      "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA:AES128-SHA:AES256-SHA",
    );
    assert.ok(!cbc.success, `a CBC-SHA1 suite was negotiated:\n${cbc.stdout}`);
    const gcm = await handshake("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256");
    assert.ok(gcm.success, `AEAD suite refused:\n${gcm.stdout}\n${gcm.stderr}`);
    assert.match(gcm.stdout, /Cipher is ECDHE-(RSA|ECDSA)-AES128-GCM-SHA256/);
  });

  await t.step("one address holds at most a quarter of the passive range unused", async () => {
    const max = 5; // makeSite's master range has 20 ports
    const held: FtpControl[] = [];
    try {
      for (let i = 0; i <= max; i++) held.push(await site.control());
      for (const ftp of held.slice(0, max)) assert.equal((await ftp.send("PASV")).code, 227);
      const over = await held[max]!.send("PASV");
      assert.equal(over.code, 425, over.lines.join(" | "));
      assert.match(over.text, /holds 5 passive ports/);
      // a session asking again replaces its own port: not counted against itself
      assert.equal((await held[0]!.send("PASV")).code, 227);
      // one used (or dropped) frees a place
      assert.equal((await held[1]!.send("QUIT")).code, 221);
      await poll(async () => (await held[max]!.send("PASV")).code === 227 || undefined, {
        timeoutMs: 5000,
        describe: () => "a passive port after another session quit",
      });
    } finally {
      for (const ftp of held) ftp.close();
    }
  });

  await t.step("one user holds at most as many, whatever addresses it logs in from", async () => {
    const r = await run("python3", [
      "-c",
      PASV_FROM_MANY,
      JSON.stringify({ host: site.host, port: site.ftpPort, user: site.user, pass: site.pass }),
    ], { timeoutMs: 60_000 });
    assert.ok(r.success, `${r.stdout}\n${r.stderr}`);
    const { codes, last } = JSON.parse(r.stdout) as { codes: string[]; last: string };
    assert.deepEqual(codes, ["227", "227", "227", "227", "227", "425"]);
    assert.match(last, /User admin already holds 5 passive ports/);
  });
});

/** Six logins of one user from six addresses, each sending PASV; prints the reply codes. */
const PASV_FROM_MANY = `
import ftplib, json, sys
cfg = json.loads(sys.argv[1])
codes, held, last = [], [], ""
for i in range(6):
    f = ftplib.FTP()
    f.connect(cfg["host"], cfg["port"], timeout=30, source_address=("127.0.0.%d" % (20 + i), 0))
    f.login(cfg["user"], cfg["pass"])
    try:
        last = f.sendcmd("PASV")
    except ftplib.Error as e:
        last = str(e)
    codes.append(last[:3])
    held.append(f)
print(json.dumps({"codes": codes, "last": last}))
`;
