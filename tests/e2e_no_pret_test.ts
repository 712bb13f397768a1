/**
 * Clients that never send PRET, on default settings (`pasv_without_pret = "slave"`), against two
 * slaves on distinct addresses (127.0.0.2, 127.0.0.3): PASV names a slave chosen from what the
 * session looked at last (SIZE of a file: one of its holders; CWD: the best slave for an upload
 * there), the data goes straight between client and slave, and the master's relayed-bytes counter
 * (`drftpd_relayed_bytes_total` on /metrics) stays 0.
 *
 * - stock Python ftplib (`trust_server_pasv_ipv4_address = True`), plain and `FTP_TLS` + `prot_p`:
 *   STOR, SIZE + RETR, SIZE + APPE, SIZE + REST + RETR, LIST/NLST/MLSD sent by a slave, and a
 *   RETR of a file held only by the slave that was not chosen (that slave streams it from the
 *   holder: "via sibling slave") — each followed by a NOOP, so the session stays in step; with the
 *   holder offline, that RETR gets the same 450 naming it as with PRET;
 * - wget (SIZE before PASV) downloads, ncftpput uploads and ncftpget downloads; tnftp with
 *   `passive off` (it refuses a 227 naming another host, so on default settings it needs active
 *   mode, where the slave dials it);
 * - curl without PRET (EPSV refused for a slave on another address, so it falls back to PASV)
 *   over TLS: the slave resumes the control connection's TLS session.
 */

import assert from "node:assert/strict";
import {
  curl,
  CURL_BASE,
  describeRun,
  freePort,
  FTPLIB_LOGIN,
  ftplibConfig,
  makeSite,
  parse227,
  parsePrometheus,
  prometheusPython,
  randomBytes,
  run,
  sameFile,
  type Site,
  slavesHolding,
  tempDir,
} from "../testing/mod.ts";

const SCRIPT = FTPLIB_LOGIN + `
out = {"steps": []}

last227 = [""]
orig_sendcmd = ftp.sendcmd
def sendcmd(cmd):
    resp = orig_sendcmd(cmd)
    if resp.startswith("227"):
        last227[0] = resp
    return resp
ftp.sendcmd = sendcmd

def step(name, fn):
    last227[0] = ""
    try:
        reply = fn()
    except Exception as e:
        reply = "error: %s: %s" % (type(e).__name__, e)
    try:
        after = ftp.sendcmd("NOOP")
    except Exception as e:
        after = "error: %s: %s" % (type(e).__name__, e)
    out["steps"].append({"name": name, "pasv": last227[0], "reply": reply, "after": after})

p = cfg["prefix"]
up = p + "up.bin"

def stor():
    ftp.cwd("/")
    with open(cfg["src"], "rb") as f:
        return ftp.storbinary("STOR " + up, f)

def retr(name, dst, rest=None, size=True):
    def run():
        if size:
            ftp.size(name)
        with open(dst, "wb") as f:
            return ftp.retrbinary("RETR " + name, f.write, rest=rest)
    return run

def appe():
    ftp.size(up)
    with open(cfg["more"], "rb") as f:
        return ftp.storbinary("APPE " + up, f)

def lines(cmd):
    def run():
        got = []
        ftp.cwd("/")
        reply = ftp.retrlines(cmd, got.append)
        out[cmd] = got
        return reply
    return run

def not_held():
    ftp.size("only2.bin")
    with open(cfg["dst3s"], "wb") as f:
        return ftp.retrbinary("RETR only3.bin", f.write)

ftp.sendcmd("TYPE I")
step("STOR", stor)
step("SIZE+RETR", retr(up, cfg["dst"]))
step("SIZE+APPE", appe)
step("SIZE+REST+RETR", retr(up, cfg["tail"], rest=cfg["rest"]))
step("LIST", lines("LIST"))
step("NLST", lines("NLST"))
step("MLSD", lines("MLSD"))
step("RETR not held", not_held)
step("SIZE+RETR only3", retr("only3.bin", cfg["dst3"]))
step("SIZE+RETR only2", retr("only2.bin", cfg["dst2"]))
try:
    out["quit"] = ftp.quit()
except Exception as e:
    out["quit"] = "error: %s: %s" % (type(e).__name__, e)
print(json.dumps(out))
`;

interface Step {
  name: string;
  /** The 227 this step's PASV got ("" if none). */
  pasv: string;
  reply: string;
  after: string;
}

interface ScriptOut {
  steps: Step[];
  LIST?: string[];
  NLST?: string[];
  MLSD?: string[];
  quit: string;
}

const ADDRESS: Record<string, string> = { s2: "127.0.0.2", s3: "127.0.0.3" };

/** Two slaves, each already holding one file only it has; /metrics on. */
async function noPretSite(dir: string): Promise<{ site: Site; metrics: string }> {
  const http = freePort();
  const site = await makeSite({
    slaves: [
      { name: "s2", address: ADDRESS.s2!, start: false },
      { name: "s3", address: ADDRESS.s3!, start: false },
    ],
    http: `127.0.0.1:${http}`,
    logLevel: "info",
  });
  try {
    await Deno.writeFile(`${dir}/only2.bin`, randomBytes(200_000));
    await Deno.writeFile(`${dir}/only3.bin`, randomBytes(300_000));
    await Deno.copyFile(`${dir}/only2.bin`, `${site.slaveRoot("s2")}/only2.bin`);
    await Deno.copyFile(`${dir}/only3.bin`, `${site.slaveRoot("s3")}/only3.bin`);
    await site.startSlave("s2");
    await site.startSlave("s3");
  } catch (e) {
    await site[Symbol.asyncDispose]();
    throw e;
  }
  return { site, metrics: `http://127.0.0.1:${http}/metrics` };
}

/** `drftpd_relayed_bytes_total` by `via`, as /metrics shows it. */
async function relayedBytes(url: string): Promise<Record<string, number>> {
  const samples = await parsePrometheus(await (await fetch(url)).text());
  const out: Record<string, number> = {};
  for (const s of samples) {
    if (s.name === "drftpd_relayed_bytes_total") out[s.labels.via!] = s.value;
  }
  return out;
}

async function assertNothingRelayed(site: Site, metrics: string): Promise<void> {
  if (prometheusPython() !== null) {
    assert.deepEqual(await relayedBytes(metrics), { relay: 0, pasv_proxy: 0 });
  }
  const log = await site.log("master");
  assert.doesNotMatch(log, /ignored the PASV address/, "a client went through the master");
  assert.doesNotMatch(log, /relayed via master/);
}

async function runFtplib(site: Site, dir: string, tls: boolean): Promise<void> {
  const script = `${dir}/no_pret.py`;
  await Deno.writeTextFile(script, SCRIPT);
  const prefix = tls ? "tls-" : "plain-";
  const first = randomBytes(1024 * 1024 + 777);
  const more = randomBytes(64 * 1024 + 5);
  const rest = 1000;
  const files = {
    src: `${dir}/${prefix}src`,
    more: `${dir}/${prefix}more`,
    dst: `${dir}/${prefix}dst`,
    tail: `${dir}/${prefix}tail`,
    dst2: `${dir}/${prefix}dst2`,
    dst3: `${dir}/${prefix}dst3`,
    dst3s: `${dir}/${prefix}dst3s`,
  };
  await Deno.writeFile(files.src, first);
  await Deno.writeFile(files.more, more);
  const cfg = ftplibConfig(site, tls, { prefix, rest, ...files });
  const r = await run("python3", [script, JSON.stringify(cfg)], { timeoutMs: 150_000 });
  assert.ok(r.success, describeRun("python3 ftplib", r) + (await site.logs(6000)));
  const out = JSON.parse(r.stdout) as ScriptOut;
  const context = async () => `${JSON.stringify(out, null, 1)}\n${await site.logs(6000)}`;
  const steps = new Map(out.steps.map((s) => [s.name, s]));
  for (const s of out.steps) {
    assert.match(s.after, /^200/, `${prefix}${s.name}: the next command got ${s.after}`);
    const route = s.name === "RETR not held" ? "via sibling slave s3" : "direct";
    assert.match(s.reply, /^226 /, `${prefix}${s.name}: ${s.reply}\n${await context()}`);
    assert.ok(s.reply.endsWith(`; ${route}`), `${prefix}${s.name}: ${s.reply}`);
    assert.notEqual(s.pasv, "", `${prefix}${s.name}: no 227`);
  }
  assert.equal(out.steps.length, 10);
  assert.match(out.quit, /^221/);

  // the upload went to one slave; every later PASV after SIZE of it named that slave
  const up = `${prefix}up.bin`;
  const holders = await slavesHolding(site, up);
  assert.equal(holders.length, 1, `holders of ${up}: ${holders}`);
  const holder = ADDRESS[holders[0]!]!;
  assert.equal(parse227(steps.get("STOR")!.pasv).host, holder);
  for (const name of ["SIZE+RETR", "SIZE+APPE", "SIZE+REST+RETR"]) {
    assert.equal(parse227(steps.get(name)!.pasv).host, holder, `${name} went to another slave`);
  }
  if (tls) {
    for (const s of out.steps.filter((s) => s.reply.startsWith("226 Transfer"))) {
      assert.match(s.reply, /TLSv1\.[23]/, `${s.name}: ${s.reply}`);
    }
  }
  const whole = new Uint8Array(first.length + more.length);
  whole.set(first);
  whole.set(more, first.length);
  assert.deepEqual(await Deno.readFile(files.dst), first, "RETR bytes differ");
  assert.deepEqual(await Deno.readFile(files.tail), whole.subarray(rest), "REST+RETR bytes differ");
  assert.deepEqual(
    await Deno.readFile(`${site.slaveRoot(holders[0]!)}/${up}`),
    whole,
    "APPE bytes differ",
  );
  assert.ok(out.NLST?.some((l) => l.endsWith(up)), `NLST ${out.NLST}`);
  assert.ok(out.LIST?.some((l) => l.endsWith(` ${up}`)), `LIST ${out.LIST}`);
  assert.ok(
    out.MLSD?.some((l) => l.includes(`size=${whole.length};`) && l.endsWith(` ${up}`)),
    `MLSD ${out.MLSD}`,
  );

  // SIZE only2.bin chose s2; only3.bin is on s3 alone: s3 streamed it to s2, which sent it on
  assert.equal(parse227(steps.get("RETR not held")!.pasv).host, ADDRESS.s2);
  assert.ok(await sameFile(files.dst3s, `${dir}/only3.bin`), "only3.bin via s2 differs");
  assert.deepEqual(await slavesHolding(site, "only3.bin"), ["s3"], "no copy was asked for");
  // and with SIZE first, each goes to its own holder
  assert.equal(parse227(steps.get("SIZE+RETR only3")!.pasv).host, ADDRESS.s3);
  assert.equal(parse227(steps.get("SIZE+RETR only2")!.pasv).host, ADDRESS.s2);
  assert.ok(await sameFile(files.dst3, `${dir}/only3.bin`), "only3.bin differs");
  assert.ok(await sameFile(files.dst2, `${dir}/only2.bin`), "only2.bin differs");
}

Deno.test("no PRET, default settings: ftplib plain and FTP_TLS prot_p, straight to the slaves", async (t) => {
  await using dir = await tempDir();
  const { site, metrics } = await noPretSite(dir.path);
  await using _site = site;
  await t.step("ftplib", () => runFtplib(site, dir.path, false));
  await t.step("ftplib FTP_TLS + prot_p", () => runFtplib(site, dir.path, true));
  await assertNothingRelayed(site, metrics);
  if (prometheusPython() !== null) {
    const samples = await parsePrometheus(await (await fetch(metrics)).text());
    const sibling = samples.find((s) =>
      s.name === "drftpd_transfers_total" && s.labels.path === "sibling" &&
      s.labels.direction === "download" && s.labels.result === "complete"
    );
    assert.equal(sibling?.value, 2, "one sibling send per pass");
  }

  await t.step("the holder offline: 450 naming it, as with PRET", async () => {
    await site.killSlave("s3");
    await site.waitSlaves(["s3"], "offline");
    await using ftp = await site.control();
    assert.equal((await ftp.send("SIZE /only2.bin")).code, 213);
    const pasv = await ftp.send("PASV");
    assert.equal(parse227(pasv.text).host, ADDRESS.s2, pasv.text);
    const r = await ftp.send("RETR /only3.bin");
    assert.equal(r.code, 450, r.lines.join(" | "));
    assert.match(r.text, /\/only3\.bin is not available: its slave \(s3\) is offline/);
    assert.equal((await ftp.send("NOOP")).code, 200);
  });
});

Deno.test("no PRET, default settings: wget, ncftpput, ncftpget, curl over TLS, tnftp active", async (t) => {
  await using dir = await tempDir();
  const { site, metrics } = await noPretSite(dir.path);
  await using _site = site;
  const userPass = ["-u", site.user, "-p", site.pass, "-P", String(site.ftpPort)];

  await t.step("wget downloads each file from its holder", async () => {
    for (const name of ["only2.bin", "only3.bin"]) {
      const out = `${dir.path}/wget-${name}`;
      const r = await run("wget", ["-q", "--no-proxy", "-O", out, site.url(`/${name}`)], {
        timeoutMs: 60_000,
      });
      assert.ok(r.success, describeRun("wget", r) + (await site.logs(4000)));
      assert.ok(await sameFile(out, `${dir.path}/${name}`), `wget ${name} differs`);
    }
  });

  await t.step("ncftpput uploads, ncftpget downloads", async () => {
    const src = `${dir.path}/ncftp.bin`;
    await Deno.writeFile(src, randomBytes(700_000 + 13));
    const put = await run("ncftpput", [...userPass, site.host, "/", src], { timeoutMs: 60_000 });
    assert.ok(put.success, describeRun("ncftpput", put) + (await site.logs(4000)));
    assert.equal((await slavesHolding(site, "ncftp.bin")).length, 1);
    const got = `${dir.path}/got`;
    await Deno.mkdir(got);
    for (const name of ["ncftp.bin", "only2.bin", "only3.bin"]) {
      const r = await run("ncftpget", [...userPass, site.host, got, `/${name}`], {
        timeoutMs: 60_000,
      });
      assert.ok(r.success, describeRun(`ncftpget ${name}`, r) + (await site.logs(4000)));
    }
    assert.ok(await sameFile(`${got}/ncftp.bin`, src), "ncftpget ncftp.bin differs");
    assert.ok(await sameFile(`${got}/only2.bin`, `${dir.path}/only2.bin`));
    assert.ok(await sameFile(`${got}/only3.bin`, `${dir.path}/only3.bin`));
  });

  await t.step(
    "curl over TLS: EPSV falls back to PASV, the slave resumes the session",
    async () => {
      const ftps = [...CURL_BASE, "--ssl-reqd", "-k", "--no-ftp-skip-pasv-ip", "-v"];
      const out = `${dir.path}/curl-only3.bin`;
      // curl sends SIZE only after PASV: a quoted SIZE first names the file it will fetch
      const down = await curl([
        ...ftps,
        "-Q",
        "SIZE /only3.bin",
        "-o",
        out,
        site.url("/only3.bin"),
      ]);
      assert.ok(down.success, describeRun("curl ftps download", down) + (await site.logs(4000)));
      assert.match(down.stderr, /< 425 EPSV cannot point at slave s3/);
      assert.match(down.stderr, /< 226 Transfer complete: .* via s3, TLSv1\.[23].*; direct/);
      assert.ok(await sameFile(out, `${dir.path}/only3.bin`), "curl download differs");
      if (/OpenSSL engine/.test(await site.log("master"))) {
        assert.match(down.stderr, /\(TLS session resumed\)/, "the slave should resume the session");
      }
      // without SIZE the PASV goes to the best slave for an upload into "/": the file comes from
      // it, or from s3 through it
      const plain = `${dir.path}/curl-plain-only3.bin`;
      const again = await curl([...ftps, "-o", plain, site.url("/only3.bin")]);
      assert.ok(again.success, describeRun("curl ftps download", again) + (await site.logs(4000)));
      assert.match(
        again.stderr,
        /< 226 Transfer complete: .*; (?:direct|via sibling slave s3)\r?\n/,
      );
      assert.ok(await sameFile(plain, `${dir.path}/only3.bin`), "curl download differs");
    },
  );

  await t.step({
    name: "tnftp with `passive off`: the slave dials it",
    ignore: !has("tnftp"),
    fn: async () => {
      const src = `${dir.path}/tnftp.bin`;
      await Deno.writeFile(src, randomBytes(300_000 + 7));
      const r = await run("tnftp", ["-n", "-v"], {
        stdin: [
          `open ${site.host} ${site.ftpPort}`,
          `user ${site.user} ${site.pass}`,
          "binary",
          "passive off",
          `put ${src} /tnftp.bin`,
          `get /only3.bin ${dir.path}/tnftp-only3.bin`,
          "quit",
          "",
        ].join("\n"),
        timeoutMs: 30_000,
      });
      assert.ok(r.success, describeRun("tnftp", r));
      assert.equal((r.stdout.match(/^226 /gm) ?? []).length, 2, describeRun("tnftp", r));
      const holders = await slavesHolding(site, "tnftp.bin");
      assert.equal(holders.length, 1);
      assert.ok(await sameFile(`${site.slaveRoot(holders[0]!)}/tnftp.bin`, src));
      assert.ok(await sameFile(`${dir.path}/tnftp-only3.bin`, `${dir.path}/only3.bin`));
    },
  });

  await assertNothingRelayed(site, metrics);
});

function has(bin: string): boolean {
  return (Deno.env.get("PATH") ?? "").split(":").some((d) => {
    try {
      return Deno.statSync(`${d}/${bin}`).isFile;
    } catch {
      return false;
    }
  });
}
