/**
 * FXP (server-to-server transfers) and FTP-bounce protection.
 *
 * - FXP both ways with a real vsftpd (and pure-ftpd when its binary is present) started by the
 *   test on 127.0.0.3, our slave on 127.0.0.2, our master on 127.0.0.1. The FXP client is just
 *   two raw control connections:
 *   a) our side passive: drftpd `PRET STOR` + `PASV` → the other server `PORT` to our slave →
 *      drftpd `STOR`, other `RETR`: the bytes land on our slave, the filelist entry is the same
 *      as for a plain client upload (SIZE, XCRC, LIST owner/size/perms, MLST facts);
 *   b) our side active: other `PASV` → drftpd `PORT` to it → drftpd `RETR`, other `STOR`.
 *   With `fxp = "deny"` the same two are refused (our slave closes vsftpd's connection and
 *   nothing is recorded; `PORT` to vsftpd is 504).
 *   These need root (vsftpd and pure-ftpd chroot anonymous sessions; pure-ftpd into the `ftp`
 *   user's home, where the test uses a fresh folder) and are skipped when not root or when the
 *   binary is missing. Debian's vsftpd and pure-ftpd packages conflict (installing one removes
 *   the other), so pure-ftpd is also looked for at `$DRFTPD_PURE_FTPD`.
 * - Bounce protection: PORT/EPRT to a port < 1024 → 501; with `fxp = "deny"` PORT/EPRT to another
 *   address than the client's → 504 naming FXP, to the client's own → 200; with FXP allowed →
 *   200; `EPSV ALL` then PASV/PORT/EPRT → 503.
 * - Passive peer checks: with `fxp = "deny"` a data connection to the slave (or to the master's
 *   relay port for clients that ignore the 227 address) from another source address than the
 *   client's is closed without data, while the client itself gets the file. With
 *   `[[ftp.fxp_rules]]` (`/incoming/**` upload = false, `/private/**` download = false): a
 *   foreign-source connection after `PRET STOR /incoming/…` (also relative or non-normalised
 *   paths) or `PRET RETR /private/…` is refused, after `PRET STOR /public/…` or
 *   `PRET RETR /incoming/…` accepted (and the upload stored); active FXP (`PORT` to a third party)
 *   into /incoming or out of /private is 550. A transfer command naming another path than its
 *   PRET must not inherit the PRET path's FXP permission.
 *   With FXP allowed, a foreign source is accepted on a passive port only after the session asked
 *   for FXP (`askFxp`: AUTH TLS + SSCN ON).
 * - Default policy (issue 11): `fxp = "deny"`, so EPRT/PORT elsewhere is 504; with the default and
 *   with `fxp = "allow"` (not asked for), a third party that connects to a client's passive port
 *   first is closed and the client, which sends RETR before connecting, gets its own file.
 *   The foreign source address is chosen with python3 (`socket.bind(("127.0.0.5", 0))`), since
 *   Deno.connect cannot pick one.
 */

import assert from "node:assert/strict";
import { passwdEntry, prepareVsftpd } from "../testing/vsftpd.ts";
import {
  crc32Hex,
  exists,
  freePort,
  freePortRange,
  FtpControl,
  type FtpReply,
  makeSite,
  parse227,
  poll,
  randomBytes,
  readAll,
  sha256,
  type Site,
  tempDir,
} from "../testing/mod.ts";

const isRoot = Deno.uid() === 0;
const decoder = new TextDecoder();

/** The first of `paths` that exists as a file, or null. */
function findBinary(paths: (string | undefined)[]): string | null {
  for (const p of paths) {
    if (p === undefined || p === "") continue;
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // next
    }
  }
  return null;
}

const VSFTPD = findBinary(["/usr/sbin/vsftpd", "/usr/local/sbin/vsftpd", "/usr/bin/vsftpd"]);
const PURE_FTPD = findBinary([
  Deno.env.get("DRFTPD_PURE_FTPD"),
  "/usr/sbin/pure-ftpd",
  "/usr/local/sbin/pure-ftpd",
]);

/** Where the other FTP server listens (a third address: neither the master's nor the slave's). */
const OTHER_HOST = "127.0.0.3";
/** Our slave's address. */
const SLAVE_HOST = "127.0.0.2";

function lines(r: FtpReply): string {
  return r.lines.join(" | ");
}

function expectCode(r: FtpReply, code: number, what: string): void {
  assert.equal(r.code, code, `${what}: ${lines(r)}`);
}

function portArg(host: string, port: number): string {
  return `${host.replaceAll(".", ",")},${port >> 8},${port & 255}`;
}

/**
 * Asks for FXP explicitly on a logged-in session: AUTH TLS, then SSCN ON (data stays in the
 * clear under PROT C). Without it a passive port accepts only the client, even with FXP allowed.
 */
async function askFxp(ftp: FtpControl, site: Site): Promise<void> {
  await ftp.startTls([await Deno.readTextFile(`${site.masterDataDir}/tls/cert.pem`)]);
  expectCode(await ftp.send("SSCN ON"), 200, "SSCN ON");
}

// ------------------------------------------------------------------------------ other servers

/** A third-party FTP server run by the test: anonymous login, `/pub` is writable. */
interface OtherServer extends AsyncDisposable {
  name: string;
  host: string;
  port: number;
  /** Writable folder on disk… */
  pub: string;
  /** …and the path clients use for it. */
  remotePub: string;
  /** Logged-in control connection (TYPE I). */
  control(): Promise<FtpControl>;
  /** What the server printed so far. */
  output(): string;
}

function spawnWithOutput(bin: string, args: string[]) {
  const child = new Deno.Command(bin, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const drain = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) out += decoder.decode(chunk, { stream: true });
  };
  const pipes = Promise.all([drain(child.stdout), drain(child.stderr)]).catch(() => {});
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill("SIGTERM");
    } catch {
      // gone
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone
      }
    }, 3000);
    await child.status;
    clearTimeout(timer);
    await pipes;
  };
  return { child, output: () => out, stop };
}

async function waitLogin(
  name: string,
  host: string,
  port: number,
  output: () => string,
  exited: () => boolean,
): Promise<void> {
  await poll(async () => {
    if (exited()) throw new Error(`${name} exited:\n${output()}`);
    const ftp = await FtpControl.login({ host, port }, {
      user: "anonymous",
      pass: "fxp@example.org",
      timeoutMs: 3000,
    });
    await ftp.quit();
    return true;
  }, {
    timeoutMs: 15_000,
    describe: () => `${name} on ${host}:${port} to accept logins\n${output()}`,
  });
}

/** vsftpd on OTHER_HOST, anonymous with uploads into /pub, FXP allowed both ways. */
async function startVsftpd(dir: string): Promise<OtherServer> {
  const { conf, pub, port } = await prepareVsftpd(dir, {
    host: OTHER_HOST,
    passivePorts: 20,
    extra: [
      // FXP: accept a data connection from another address than the control connection's
      // (passive), and PORT to another address than the client's (active)
      "pasv_promiscuous=YES",
      "port_promiscuous=YES",
      "connect_from_port_20=NO",
      "syslog_enable=NO",
      "max_clients=0",
    ],
  });
  const proc = spawnWithOutput(VSFTPD!, [conf]);
  let exited = false;
  void proc.child.status.then(() => (exited = true));
  try {
    await waitLogin("vsftpd", OTHER_HOST, port, proc.output, () => exited);
  } catch (error) {
    await proc.stop();
    throw error;
  }
  return {
    name: "vsftpd",
    host: OTHER_HOST,
    port,
    pub,
    remotePub: "/pub",
    control: () =>
      FtpControl.login({ host: OTHER_HOST, port }, { user: "anonymous", pass: "fxp@x.org" }),
    output: proc.output,
    [Symbol.asyncDispose]: proc.stop,
  };
}

/**
 * pure-ftpd on OTHER_HOST in the foreground: anonymous only (`-e`), anonymous FXP allowed
 * (`-W`), anonymous uploads and mkdir allowed (no `-i`, `-M`), passive range `-p`. Anonymous
 * sessions are chrooted into the home of the `ftp` user, so the test works in a fresh folder
 * under it (removed afterwards).
 */
async function startPureFtpd(): Promise<OtherServer> {
  const ftpUser = await passwdEntry("ftp");
  if (!ftpUser) throw new Error("pure-ftpd needs an ftp user for anonymous sessions");
  const passwd = await Deno.readTextFile("/etc/passwd");
  const home = passwd.split("\n").find((l) => l.startsWith("ftp:"))!.split(":")[5]!;
  await Deno.mkdir(home, { recursive: true });
  const sub = `drftpd-fxp-${crypto.randomUUID().slice(0, 8)}`;
  const pub = `${home}/${sub}`;
  await Deno.mkdir(pub);
  await Deno.chown(pub, ftpUser.uid, ftpUser.gid);
  const port = freePort();
  const pasv = freePortRange(20);
  const proc = spawnWithOutput(PURE_FTPD!, [
    "-S",
    `${OTHER_HOST},${port}`,
    "-p",
    `${pasv.from}:${pasv.to}`,
    "-P",
    OTHER_HOST,
    "-e", // anonymous only
    "-M", // anonymous may create folders
    "-W", // anonymous FXP
    "-H", // no reverse DNS
    "-A", // chroot everyone
    "-f",
    "none", // no syslog
    "-d",
    "-d",
    "-4",
  ]);
  let exited = false;
  void proc.child.status.then(() => (exited = true));
  try {
    await waitLogin("pure-ftpd", OTHER_HOST, port, proc.output, () => exited);
  } catch (error) {
    await proc.stop();
    await Deno.remove(pub, { recursive: true }).catch(() => {});
    throw error;
  }
  return {
    name: "pure-ftpd",
    host: OTHER_HOST,
    port,
    pub,
    remotePub: `/${sub}`,
    control: () =>
      FtpControl.login({ host: OTHER_HOST, port }, { user: "anonymous", pass: "fxp@x.org" }),
    output: proc.output,
    [Symbol.asyncDispose]: async () => {
      await proc.stop();
      await Deno.remove(pub, { recursive: true }).catch(() => {});
    },
  };
}

// ------------------------------------------------------------------------------ FXP scenarios

/** Both FXP directions between our site and `other`, as two control connections. */
async function fxpBothWays(t: Deno.TestContext, site: Site, other: OtherServer): Promise<void> {
  const dir = `/fxp-${other.name}`;
  const src = randomBytes(1_234_567);
  await Deno.writeFile(`${other.pub}/src.bin`, src, { mode: 0o644 });
  await using ours = await site.control();
  await using theirs = await other.control();
  expectCode(await ours.send(`MKD ${dir}`), 257, "MKD");

  await t.step(`${other.name} → drftpd: our slave passive, ${other.name} active`, async () => {
    await askFxp(ours, site);
    const dst = `${dir}/in.bin`;
    const pasv = await ours.pasv(`STOR ${dst}`);
    assert.equal(pasv.host, SLAVE_HOST, `PASV should name the slave: ${lines(pasv.reply)}`);
    expectCode(
      await theirs.send(`PORT ${portArg(pasv.host, pasv.port)}`),
      200,
      `${other.name} PORT to our slave`,
    );
    expectCode(await ours.send(`STOR ${dst}`), 150, "drftpd STOR");
    expectCode(await theirs.send(`RETR ${other.remotePub}/src.bin`), 150, `${other.name} RETR`);
    const [mine, their] = await Promise.all([ours.read(), theirs.read()]);
    expectCode(mine, 226, "drftpd STOR end");
    expectCode(their, 226, `${other.name} RETR end`);

    const onDisk = await Deno.readFile(`${site.slaveRoot("s2")}${dst}`);
    assert.equal(await sha256(onDisk), await sha256(src), "bytes on our slave");
    const size = await ours.send(`SIZE ${dst}`);
    assert.deepEqual([size.code, size.text.trim()], [213, String(src.length)], lines(size));
    const xcrc = await ours.send(`XCRC ${dst}`);
    assert.deepEqual([xcrc.code, xcrc.text.trim().toLowerCase()], [250, crc32Hex(src)]);

    // the filelist entry looks exactly like one from a plain client upload of the same bytes
    await ours.store(`${dir}/ref.bin`, src);
    const list = await ours.transfer(await ours.pasv(`LIST ${dir}`), `LIST ${dir}`);
    const text = decoder.decode(list.data);
    const line = (name: string) => {
      const l = text.split("\r\n").find((x) => x.endsWith(` ${name}`));
      assert.ok(l, `LIST ${dir} has no ${name}:\n${text}`);
      return l.split(/\s+/);
    };
    const [fxp, ref] = [line("in.bin"), line("ref.bin")];
    assert.equal(fxp[2], site.user, `owner of the FXP upload: ${fxp.join(" ")}`);
    // perms, links, owner, group, size
    assert.deepEqual(fxp.slice(0, 5), ref.slice(0, 5), `LIST:\n${text}`);
    const facts = async (name: string) => {
      const r = await ours.send(`MLST ${dir}/${name}`);
      expectCode(r, 250, "MLST");
      return (r.lines[1] ?? "").trim().split(";").filter((f) => !/^(modify|create)=/i.test(f))
        .map((f) => f.replace(/ .*$/, ""));
    };
    assert.deepEqual(await facts("in.bin"), await facts("ref.bin"), "MLST facts");
  });

  await t.step(`drftpd → ${other.name}: ${other.name} passive, our slave active`, async () => {
    await ours.store("/x.bin", src);
    const pasv = await theirs.pasv();
    assert.equal(pasv.host, other.host, lines(pasv.reply));
    expectCode(
      await ours.send(`PORT ${portArg(pasv.host, pasv.port)}`),
      200,
      `drftpd PORT to ${other.name}`,
    );
    await theirs.write(`STOR ${other.remotePub}/x.bin`);
    expectCode(await ours.send("RETR /x.bin"), 150, "drftpd RETR");
    const [their1, mine, their2] = await Promise.all([
      theirs.read().then(async (r) => [r, await theirs.read()] as const),
      ours.read(),
    ]).then(([[a, b], m]) => [a, m, b] as const);
    expectCode(their1, 150, `${other.name} STOR`);
    expectCode(mine, 226, "drftpd RETR end");
    expectCode(their2, 226, `${other.name} STOR end`);
    const onDisk = await Deno.readFile(`${other.pub}/x.bin`);
    assert.equal(await sha256(onDisk), await sha256(src), `bytes on ${other.name}'s disk`);
  });
}

const FXP_RULES = `fxp = "allow"
[[ftp.fxp_rules]]
path = "/incoming/**"
upload = false
download = true
[[ftp.fxp_rules]]
path = "/private/**"
upload = true
download = false`;

Deno.test({
  name: "FXP with vsftpd, both directions",
  ignore: !isRoot || VSFTPD === null,
  async fn(t) {
    await using dir = await tempDir("drftpd-fxp-vsftpd-");
    await using other = await startVsftpd(dir.path);
    await using site = await makeSite({
      slaves: [{ name: "s2", address: SLAVE_HOST }],
      masterExtra: FXP_RULES,
    });
    try {
      await fxpBothWays(t, site, other);
    } finally {
      if (Deno.env.get("DRFTPD_E2E_VERBOSE") === "1") console.error(other.output());
    }
  },
});

Deno.test({
  name: "FXP with vsftpd is refused both ways when fxp = deny",
  ignore: !isRoot || VSFTPD === null,
  async fn(t) {
    await using dir = await tempDir("drftpd-fxp-vsftpd-deny-");
    await using other = await startVsftpd(dir.path);
    await using site = await makeSite({
      slaves: [{ name: "s2", address: SLAVE_HOST }],
      masterExtra: `fxp = "deny"`,
    });
    await using ours = await site.control();
    await using theirs = await other.control();
    const src = randomBytes(300_000);
    await Deno.writeFile(`${other.pub}/src.bin`, src, { mode: 0o644 });

    await t.step("vsftpd → our passive slave: its connection is refused", async () => {
      const pasv = await ours.pasv("STOR /denied.bin");
      expectCode(await theirs.send(`PORT ${portArg(pasv.host, pasv.port)}`), 200, "vsftpd PORT");
      expectCode(await ours.send("STOR /denied.bin"), 150, "drftpd STOR");
      let their = await theirs.send(`RETR ${other.remotePub}/src.bin`);
      if (their.code === 150) their = await theirs.read();
      // vsftpd may even say 226: the file fits in the socket buffers before our slave closes
      // the connection. What matters is that our slave refused it.
      await poll(async () => {
        const log = await site.log("s2");
        return /Refused data connection .*from 127\.0\.0\.3/.test(log) ? true : undefined;
      }, {
        timeoutMs: 5000,
        describe: async () =>
          `the slave to refuse vsftpd (vsftpd said ${lines(their)})\n${await site.log("s2")}`,
      });
      // our STOR is still waiting for its (only legitimate) peer: abort it
      await ours.write("ABOR");
      const replies: FtpReply[] = [];
      while (replies.length < 3) {
        const r = await ours.read();
        replies.push(r);
        if (r.code === 226 || r.code === 225) break;
      }
      assert.ok(
        replies.some((r) => r.code === 426 || r.code === 225),
        `ABOR: ${replies.map(lines).join(" / ")}`,
      );
      expectCode(await ours.send("SIZE /denied.bin"), 550, "nothing recorded");
      assert.ok(!(await exists(`${site.slaveRoot("s2")}/denied.bin`)), "nothing on the slave");
    });

    await t.step("our slave active towards vsftpd: PORT to it is 504", async () => {
      await ours.store("/x.bin", src);
      const pasv = await theirs.pasv();
      const r = await ours.send(`PORT ${portArg(pasv.host, pasv.port)}`);
      expectCode(r, 504, "drftpd PORT to vsftpd");
      assert.match(r.text, /FXP/, lines(r));
      expectCode(await theirs.send("ABOR"), 225, "vsftpd ABOR");
    });
  },
});

Deno.test({
  name: "FXP with pure-ftpd, both directions",
  ignore: !isRoot || PURE_FTPD === null,
  async fn(t) {
    await using other = await startPureFtpd();
    await using site = await makeSite({
      slaves: [{ name: "s2", address: SLAVE_HOST }],
      masterExtra: FXP_RULES,
    });
    try {
      await fxpBothWays(t, site, other);
    } finally {
      if (Deno.env.get("DRFTPD_E2E_VERBOSE") === "1") console.error(other.output());
    }
  },
});

// ------------------------------------------------------------------------------ bounce protection

Deno.test("PORT/EPRT: privileged ports refused, FXP when allowed", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s2", address: SLAVE_HOST }],
    masterExtra: `fxp = "allow"`,
  });
  await using ftp = await site.control();
  const r21 = await ftp.send("PORT 127,0,0,1,0,21");
  expectCode(r21, 501, "PORT to port 21");
  const r80 = await ftp.send("EPRT |1|127.0.0.1|80|");
  expectCode(r80, 501, "EPRT to port 80");
  const high = freePort();
  expectCode(await ftp.send(`PORT ${portArg("127.0.0.2", high)}`), 200, "PORT to a third party");
  expectCode(await ftp.send(`EPRT |1|127.0.0.2|${high}|`), 200, "EPRT to a third party");
  expectCode(await ftp.send(`PORT ${portArg("127.0.0.1", high)}`), 200, "PORT to the client");
});

Deno.test("fxp = deny: PORT to a foreign address is 504, EPSV ALL locks out PASV/PORT", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s2", address: SLAVE_HOST }],
    masterExtra: `fxp = "deny"`,
  });
  await using ftp = await site.control();
  const high = freePort();
  const foreign = await ftp.send(`PORT ${portArg("127.0.0.2", high)}`);
  expectCode(foreign, 504, "PORT to 127.0.0.2");
  assert.match(foreign.text, /FXP/, lines(foreign));
  const foreignE = await ftp.send(`EPRT |1|127.0.0.2|${high}|`);
  expectCode(foreignE, 504, "EPRT to 127.0.0.2");
  assert.match(foreignE.text, /FXP/, lines(foreignE));
  expectCode(await ftp.send(`PORT ${portArg("127.0.0.1", high)}`), 200, "PORT to the client");
  expectCode(await ftp.send("PORT 127,0,0,1,0,21"), 501, "PORT to port 21");

  expectCode(await ftp.send("EPSV ALL"), 200, "EPSV ALL");
  expectCode(await ftp.send("PASV"), 503, "PASV after EPSV ALL");
  expectCode(await ftp.send(`PORT ${portArg("127.0.0.1", high)}`), 503, "PORT after EPSV ALL");
  expectCode(await ftp.send(`EPRT |1|127.0.0.1|${high}|`), 503, "EPRT after EPSV ALL");
});

// ------------------------------------------------------------------------------ passive peers

/**
 * Connects to host:port from source address `src` (python3, since Deno.connect cannot bind a
 * source address), then waits up to `holdMs` for the server to say something:
 * "closed" (EOF) or "reset" when refused, "data" if bytes came, "open" when still connected.
 * With `upload`, an "open" connection then sends those bytes and closes: "sent".
 */
const PEER_SCRIPT = `
import socket, sys, json
cfg = json.loads(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind((cfg["src"], 0))
s.settimeout(5)
out = {}
try:
    s.connect((cfg["host"], cfg["port"]))
except OSError as e:
    print(json.dumps({"result": "connect-failed", "error": str(e)})); sys.exit(0)
out["local"] = s.getsockname()[0]
print("CONNECTED", flush=True)
s.settimeout(cfg["hold"])
try:
    data = s.recv(65536)
    out["result"] = "closed" if data == b"" else "data"
except socket.timeout:
    out["result"] = "open"
except ConnectionResetError:
    out["result"] = "reset"
if out["result"] == "open" and cfg.get("upload"):
    s.settimeout(30)
    with open(cfg["upload"], "rb") as f:
        s.sendall(f.read())
    s.shutdown(socket.SHUT_WR)
    s.settimeout(cfg["drain"])
    out["result"] = "sent"
    try:
        while s.recv(65536):
            pass
    except (socket.timeout, ConnectionResetError):
        out["result"] = "sent, not closed by the server"
if out["result"] == "data":
    s.settimeout(cfg["drain"])
    n = len(data)
    try:
        while True:
            more = s.recv(65536)
            if not more:
                break
            n += len(more)
    except (socket.timeout, ConnectionResetError):
        pass
    out["bytes"] = n
s.close()
print(json.dumps(out))
`;

interface PeerResult {
  result: string;
  local?: string;
  bytes?: number;
  ms: number;
}

/** Starts {@link PEER_SCRIPT}; `connected` resolves once its TCP connection is established. */
function peerFrom(
  src: string,
  endpoint: { host: string; port: number },
  options: { holdMs?: number; upload?: string; drainMs?: number } = {},
): { connected: Promise<void>; done: Promise<PeerResult> } {
  const started = performance.now();
  const cfg = {
    src,
    host: endpoint.host,
    port: endpoint.port,
    hold: (options.holdMs ?? 5000) / 1000,
    upload: options.upload ?? null,
    drain: (options.drainMs ?? 10_000) / 1000,
  };
  const child = new Deno.Command("python3", {
    args: ["-c", PEER_SCRIPT, JSON.stringify(cfg)],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
  }, 40_000);
  let markConnected = () => {};
  const connected = new Promise<void>((resolve) => (markConnected = resolve));
  const done = (async () => {
    try {
      let out = "";
      const stderr = new Response(child.stderr).text();
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        out += chunk;
        if (out.includes("CONNECTED\n")) markConnected();
      }
      const status = await child.status;
      const last = out.trim().split("\n").pop() ?? "";
      assert.ok(status.success && last.startsWith("{"), `python3 peer: ${out}\n${await stderr}`);
      return { ...JSON.parse(last), ms: performance.now() - started } as PeerResult;
    } finally {
      clearTimeout(timer);
      markConnected(); // also when it never connected: `done` tells why
    }
  })();
  return { connected, done };
}

/** {@link peerFrom} to completion. */
function connectFrom(
  src: string,
  endpoint: { host: string; port: number },
  options: { holdMs?: number; upload?: string; drainMs?: number } = {},
): Promise<PeerResult> {
  return peerFrom(src, endpoint, options).done;
}

function assertRefused(r: PeerResult, what: string): void {
  assert.ok(
    r.result === "closed" || r.result === "reset",
    `${what}: a connection from 127.0.0.5 should be closed without data, got ${JSON.stringify(r)}`,
  );
  assert.equal(r.local, "127.0.0.5", `${what}: python did not use the source address`);
}

Deno.test("fxp = deny: only the client's address may open the slave's passive port", async (t) => {
  await using site = await makeSite({
    slaves: [{ name: "s2", address: SLAVE_HOST }],
    masterExtra: `fxp = "deny"`,
  });
  await using ftp = await site.control();
  assert.equal(ftp.localAddr.hostname, "127.0.0.1");
  const bytes = randomBytes(300_000);
  await ftp.store("/f.bin", bytes);

  await t.step("a foreign source is closed at once; the client still gets the file", async () => {
    const pasv = await ftp.pasv("RETR /f.bin");
    assert.equal(pasv.host, SLAVE_HOST, lines(pasv.reply));
    const toSlave = await connectFrom("127.0.0.5", pasv);
    assertRefused(toSlave, "slave port");
    // the master's relay port for clients that ignore the 227 address checks the peer too
    const toRelay = await connectFrom("127.0.0.5", { host: "127.0.0.1", port: pasv.port });
    assertRefused(toRelay, "master relay port");
    const { data } = await ftp.transfer(pasv, "RETR /f.bin");
    assert.equal(await sha256(data), await sha256(bytes));
    const log = await site.log("s2");
    assert.match(log, /Refused data connection .*from 127\.0\.0\.5/, "slave log");
  });

  await t.step(
    "PASV without PRET, answered by the only slave, refuses a foreign source",
    async () => {
      const pasv = await ftp.pasv();
      assert.equal(pasv.host, SLAVE_HOST, lines(pasv.reply));
      assertRefused(await connectFrom("127.0.0.5", pasv), "slave port without PRET");
      const { data } = await ftp.transfer(pasv, "RETR /f.bin");
      assert.equal(await sha256(data), await sha256(bytes), "download without PRET");
    },
  );

  await t.step("the master's own passive port (PRET LIST) refuses a foreign source", async () => {
    const pasv = await ftp.pasv("LIST");
    assert.equal(pasv.host, "127.0.0.1", lines(pasv.reply));
    assertRefused(await connectFrom("127.0.0.5", pasv), "master passive port");
    const { data } = await ftp.transfer(pasv, "NLST");
    assert.match(new TextDecoder().decode(data), /f\.bin/);
  });

  await t.step("PRET STOR: a foreign source is refused as well", async () => {
    const pasv = await ftp.pasv("STOR /g.bin");
    assertRefused(await connectFrom("127.0.0.5", pasv), "slave port for STOR");
    await ftp.transfer(pasv, "STOR /g.bin", { upload: bytes });
    const onDisk = await Deno.readFile(`${site.slaveRoot("s2")}/g.bin`);
    assert.equal(await sha256(onDisk), await sha256(bytes));
  });
});

Deno.test("fxp_rules: FXP refused under /incoming (uploads) and /private (downloads)", async (t) => {
  await using site = await makeSite({
    slaves: [{ name: "s2", address: SLAVE_HOST }],
    masterExtra: FXP_RULES,
  });
  await using ftp = await site.control();
  await askFxp(ftp, site);
  expectCode(await ftp.send("MKD /incoming"), 257, "MKD /incoming");
  expectCode(await ftp.send("MKD /public"), 257, "MKD /public");
  expectCode(await ftp.send("MKD /private"), 257, "MKD /private");
  const bytes = randomBytes(200_000);
  const src = `${site.dir}/fxp-src.bin`;
  await Deno.writeFile(src, bytes);

  await t.step("PRET STOR /incoming/a.bin: a foreign source is refused", async () => {
    const pasv = await ftp.pasv("STOR /incoming/a.bin");
    assert.equal(pasv.host, SLAVE_HOST, lines(pasv.reply));
    assertRefused(await connectFrom("127.0.0.5", pasv), "/incoming upload");
    // the client itself may still upload there
    await ftp.transfer(pasv, "STOR /incoming/a.bin", { upload: bytes });
    assert.ok(await exists(`${site.slaveRoot("s2")}/incoming/a.bin`));
  });

  await t.step("PRET STOR /public/a.bin: a foreign source is accepted and stored", async () => {
    const pasv = await ftp.pasv("STOR /public/a.bin");
    const [peer, started] = await Promise.all([
      connectFrom("127.0.0.5", pasv, { holdMs: 1500, upload: src }),
      ftp.send("STOR /public/a.bin"),
    ]);
    expectCode(started, 150, "STOR /public/a.bin");
    assert.equal(peer.result, "sent", `foreign FXP upload: ${JSON.stringify(peer)}`);
    expectCode(await ftp.read(), 226, "STOR /public/a.bin end");
    const onDisk = await Deno.readFile(`${site.slaveRoot("s2")}/public/a.bin`);
    assert.equal(await sha256(onDisk), await sha256(bytes));
  });

  await t.step(
    "PRET RETR /incoming/a.bin (download = true): a foreign source is accepted",
    async () => {
      const pasv = await ftp.pasv("RETR /incoming/a.bin");
      const r = await connectFrom("127.0.0.5", pasv, { holdMs: 1000 });
      assert.equal(r.result, "open", `FXP download from /incoming: ${JSON.stringify(r)}`);
      // python closed it again without a transfer: drop the prepared transfer
      expectCode(await ftp.send("ABOR"), 225, "ABOR");
    },
  );

  await t.step("relative and non-normalised paths under /incoming are refused too", async () => {
    expectCode(await ftp.send("CWD /incoming"), 250, "CWD /incoming");
    const probes: [string, string][] = [
      ["STOR rel.bin", "relative path"],
      ["STOR /public/../incoming/dots.bin", "/public/../incoming"],
      ["STOR //incoming//slashes.bin", "//incoming//"],
      ["STOR /incoming/./dot.bin", "/incoming/./"],
    ];
    for (const [pret, what] of probes) {
      const r = await ftp.send(`PRET ${pret}`);
      if (r.code !== 200) continue; // refusing the path outright is fine too
      const pasv = await ftp.send("PASV");
      expectCode(pasv, 227, `PASV after PRET ${pret}`);
      assertRefused(await connectFrom("127.0.0.5", parse227(pasv.text)), what);
      expectCode(await ftp.send("ABOR"), 225, "ABOR");
    }
    expectCode(await ftp.send("CWD /"), 250, "CWD /");
  });

  await t.step("PORT to a third party + STOR /incoming/b.bin is refused by the rule", async () => {
    const high = freePort();
    expectCode(await ftp.send(`PORT ${portArg("127.0.0.2", high)}`), 200, "PORT (FXP allowed)");
    const r = await ftp.send("STOR /incoming/b.bin");
    expectCode(r, 550, "active FXP upload into /incoming");
    assert.match(r.text, /FXP/, lines(r));
    assert.ok(!(await exists(`${site.slaveRoot("s2")}/incoming/b.bin`)));
  });
});

Deno.test("fxp_rules: a transfer naming another path than its PRET does not inherit its FXP permission", async (t) => {
  await using site = await makeSite({
    slaves: [{ name: "s2", address: SLAVE_HOST }],
    masterExtra: FXP_RULES,
  });
  await using ftp = await site.control();
  await askFxp(ftp, site);
  for (const d of ["/incoming", "/public", "/private"]) {
    expectCode(await ftp.send(`MKD ${d}`), 257, `MKD ${d}`);
  }
  const bytes = randomBytes(200_000);
  const src = `${site.dir}/fxp-src.bin`;
  await Deno.writeFile(src, bytes);
  await ftp.store("/public/pub.bin", bytes);
  await ftp.store("/private/secret.bin", bytes);

  await t.step(
    "PORT to a third party + RETR /private/secret.bin is refused by the rule",
    async () => {
      expectCode(await ftp.send(`PORT ${portArg("127.0.0.2", freePort())}`), 200, "PORT");
      const r = await ftp.send("RETR /private/secret.bin");
      expectCode(r, 550, "active FXP download from /private");
      assert.match(r.text, /FXP/, lines(r));
    },
  );

  await t.step("PRET RETR /private/secret.bin: a foreign source is refused", async () => {
    const pasv = await ftp.pasv("RETR /private/secret.bin");
    assertRefused(await connectFrom("127.0.0.5", pasv), "/private download");
    expectCode(await ftp.send("ABOR"), 225, "ABOR");
  });

  await t.step(
    "PRET STOR /public/ok.bin, then STOR /incoming/evil.bin from a third party",
    async () => {
      const pasv = await ftp.pasv("STOR /public/ok.bin");
      const [peer, first] = await Promise.all([
        connectFrom("127.0.0.5", pasv, { holdMs: 1500, upload: src, drainMs: 5000 }),
        ftp.send("STOR /incoming/evil.bin"),
      ]);
      const last = first.code === 150 ? await ftp.read() : first;
      const size = await ftp.send("SIZE /incoming/evil.bin");
      const stored = await exists(`${site.slaveRoot("s2")}/incoming/evil.bin`);
      await ftp.send("ABOR");
      assert.ok(
        last.code >= 400 && size.code === 550 && !stored,
        `an FXP upload into /incoming (upload = false) was accepted by naming /public in PRET: ` +
          `STOR → ${lines(first)} … ${first === last ? "" : lines(last)}; ` +
          `SIZE → ${lines(size)}; on the slave's disk: ${stored}; third party: ${
            JSON.stringify(peer)
          }`,
      );
    },
  );

  await t.step(
    "PRET RETR /public/pub.bin, then RETR /private/secret.bin to a third party",
    async () => {
      const pasv = await ftp.pasv("RETR /public/pub.bin");
      const [peer, first] = await Promise.all([
        connectFrom("127.0.0.5", pasv, { holdMs: 1500, drainMs: 5000 }),
        ftp.send("RETR /private/secret.bin"),
      ]);
      const last = first.code === 150 ? await ftp.read() : first;
      await ftp.send("ABOR");
      assert.ok(
        peer.result !== "data" && last.code >= 400,
        `an FXP download from /private (download = false) was served by naming /public in PRET: ` +
          `RETR → ${lines(first)} … ${first === last ? "" : lines(last)}; third party got ${
            JSON.stringify(peer)
          }`,
      );
    },
  );
});

Deno.test("default FXP policy: no bounce, and nobody else takes a client's passive port", async (t) => {
  for (const masterExtra of [undefined, `fxp = "allow"`]) {
    const config = masterExtra ?? "default config";
    await using site = await makeSite({
      slaves: [{ name: "s2", address: SLAVE_HOST }],
      ...(masterExtra === undefined ? {} : { masterExtra }),
    });
    await using ftp = await site.control();
    const bytes = randomBytes(300_000);
    await ftp.store("/f.bin", bytes);

    if (masterExtra === undefined) {
      await t.step(`${config}: EPRT/PORT to another address is 504`, async () => {
        const high = freePort();
        expectCode(await ftp.send(`EPRT |1|127.0.0.9|${high}|`), 504, "EPRT to 127.0.0.9");
        expectCode(await ftp.send(`PORT ${portArg("127.0.0.9", high)}`), 504, "PORT");
        expectCode(await ftp.send(`EPRT |1|127.0.0.1|${high}|`), 200, "EPRT to the client");
      });
    }

    await t.step(`${config}: a third party that connects first gets nothing`, async () => {
      const pasv = await ftp.pasv("RETR /f.bin");
      assert.equal(pasv.host, SLAVE_HOST, lines(pasv.reply));
      const thief = peerFrom("127.0.0.5", pasv, { holdMs: 3000 });
      await thief.connected;
      // the victim sends RETR before connecting: the slave must not serve the thief
      expectCode(await ftp.send("RETR /f.bin"), 150, "RETR");
      const data = await Deno.connect({ hostname: pasv.host, port: pasv.port });
      const got = await readAll(data);
      data.close();
      expectCode(await ftp.read(), 226, "RETR end");
      assert.equal(await sha256(got), await sha256(bytes), "the client got its file");
      assertRefused(await thief.done, "thief");
    });

    await t.step(`${config}: an upload's passive port refuses a third party too`, async () => {
      const pasv = await ftp.pasv("STOR /g.bin");
      assertRefused(await connectFrom("127.0.0.5", pasv), "slave port for STOR");
      await ftp.transfer(pasv, "STOR /g.bin", { upload: bytes });
      const onDisk = await Deno.readFile(`${site.slaveRoot("s2")}/g.bin`);
      assert.equal(await sha256(onDisk), await sha256(bytes));
    });
  }
});

Deno.test("[[permissions]] fxp_download / fxp_upload decide FXP per user and path", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s2", address: SLAVE_HOST }],
    masterExtra: `fxp = "allow"
[[permissions]]
path = "/private/**"
fxp_download = ["admin"]
fxp_upload = ["admin"]`,
  });
  await site.addUser("bob", "bob-pw-1");
  {
    await using admin = await site.control();
    expectCode(await admin.send("MKD /private"), 257, "MKD /private");
    await admin.store("/private/s.bin", randomBytes(1000));
    await admin.store("/pub.bin", randomBytes(1000));
  }
  await using bob = await FtpControl.login({ host: site.host, port: site.ftpPort }, {
    user: "bob",
    pass: "bob-pw-1",
  });
  expectCode(await bob.send(`PORT ${portArg("127.0.0.2", freePort())}`), 200, "PORT elsewhere");
  const denied = await bob.send("RETR /private/s.bin");
  expectCode(denied, 550, "FXP download of /private by bob");
  assert.match(denied.text, /FXP/);
  expectCode(await bob.send(`PORT ${portArg("127.0.0.2", freePort())}`), 200, "PORT elsewhere");
  const up = await bob.send("STOR /private/t.bin");
  expectCode(up, 550, "FXP upload into /private by bob");
  // outside /private the rules name no FXP action: allowed (nobody listens there: 150 then 425)
  expectCode(await bob.send(`PORT ${portArg("127.0.0.2", freePort())}`), 200, "PORT elsewhere");
  const other = await bob.send("RETR /pub.bin");
  assert.notEqual(other.code, 550, `FXP download of /pub.bin: ${lines(other)}`);
});
