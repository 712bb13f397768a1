/**
 * The client matrix: real FTP clients, each in its default configuration and (where it has one)
 * its PRET configuration, against a master on 127.0.0.1 (`pasv_without_pret = "relay"`) with
 * slaves on 127.0.0.2 and 127.0.0.3 (so a client that honours the 227 address goes straight to a
 * slave, and one that ignores it ends up at the master, which relays). For every client: login,
 * mkdir/rmdir, upload, list, download, resume of a download and of an upload, rename, delete.
 * Then each client uploads, lists and downloads once more against a master with default
 * settings (`pasv_without_pret = "slave"`), and the bytes the master relayed meanwhile
 * (`drftpd_relayed_bytes_total`) fill the last column ("fails": tnftp refuses a 227 naming
 * another host). Each operation is one client run (a fresh login); its effect is checked
 * independently over a raw control connection and on the slaves' disks, and the master's log
 * tells which data path the upload and download took:
 *
 * - **direct to the slave**: PRET, and the client connected to the slave named in the 227 reply;
 * - **relayed by the master (PRET, 227 ignored)**: PRET, but the client connected to the
 *   control connection's address instead, where the master listens on the same port and relays
 *   to the slave (it logs "the client ignored the PASV address; master relayed N bytes");
 * - **relayed by the master (no PRET)**: PASV/EPSV without PRET named the master's own passive
 *   port, and the master relayed the data to or from a slave.
 *
 * tnftp refuses a 227 address other than the control connection's ("Passive mode address
 * mismatch"), so its PRET variant runs against two slaves on 127.0.0.1 (disjoint passive ranges),
 * where `EPSV` after `PRET` goes straight to the slave; a separate test pins that refusal.
 *
 * Client matrix (this file's results on Debian 12: curl 7.88.1, lftp 4.9.2, Python 3.11 ftplib,
 * npm basic-ftp 5.3.1, tnftp 20210827; master on 127.0.0.1, slaves on 127.0.0.2/127.0.0.3 unless
 * noted). ✅ = works, bytes and filelist verified. "Relayed by the master" costs the master the
 * transfer's bytes; it logs "the client ignored the PASV address; master relayed N bytes" when
 * the client sent PRET but connected to the control address instead of the slave's.
 * `deno test -A tests/e2e_clients_test.ts` prints the same table from the actual run.
 *
 * | Client            | Configuration                                                      | Login | List | Upload | Download | Resume ↓ | Resume ↑ | Rename | Delete | Mkdir/Rmdir | Data path                                  |
 * | ----------------- | ------------------------------------------------------------------ | ----- | ---- | ------ | -------- | -------- | -------- | ------ | ------ | ----------- | ------------------------------------------ |
 * | raw socket        | `PRET` + `PASV`, connect to the 227 address                        | ✅    | ✅   | ✅     | ✅       | ✅       | ✅       | ✅     | ✅     | ✅          | direct to the slave                        |
 * | curl              | default (no PRET; `--ftp-skip-pasv-ip` is the default)             | ✅    | ✅   | ✅     | ✅       | ✅       | ✅       | ✅     | ✅     | ✅          | relayed by the master (no PRET)            |
 * | curl              | `--ftp-pret --no-ftp-skip-pasv-ip`                                 | ✅    | ✅   | ✅     | ✅       | ✅       | ✅       | ✅     | ✅     | ✅          | direct to the slave                        |
 * | curl              | `--ftp-pret` alone (still skips the 227 address)                   | ✅    | ✅   | ✅     | ✅       | ✅       | ✅       | ✅     | ✅     | ✅          | relayed by the master (PRET, 227 ignored)  |
 * | lftp              | default (`ftp:use-pret auto` sends PRET, FEAT lists it)            | ✅    | ✅   | ✅     | ✅       | ✅       | ✅       | ✅     | ✅     | ✅          | relayed by the master (PRET, 227 ignored)¹ |
 * | lftp              | default, slaves on the master's address 127.0.0.1                  | ✅    | ✅   | ✅     | ✅       | ✅       | ✅       | ✅     | ✅     | ✅          | direct to the slave                        |
 * | Python ftplib     | default (no PRET, ignores the 227 address)                         | ✅    | ✅   | ✅     | ✅       | ✅       | ✅       | ✅     | ✅     | ✅          | relayed by the master (no PRET)            |
 * | Python ftplib     | `sendcmd("PRET …")` + `trust_server_pasv_ipv4_address = True`      | ✅    | ✅   | ✅     | ✅       | ✅       | ✅       | ✅     | ✅     | ✅          | direct to the slave                        |
 * | Python ftplib     | `sendcmd("PRET …")`, default (untrusted 227 address)               | ✅    | ✅   | ✅     | ✅       | ✅       | ✅       | ✅     | ✅     | ✅          | relayed by the master (PRET, 227 ignored)  |
 * | npm basic-ftp     | default (EPSV first, no PRET)                                      | ✅    | ✅   | ✅     | ✅       | ✅       | ✅       | ✅     | ✅     | ✅          | relayed by the master (no PRET)            |
 * | npm basic-ftp     | `client.send("PRET …")`, `allowSeparateTransferHost: true`²        | ✅    | ✅   | ✅     | ✅       | ✅       | ✅       | ✅     | ✅     | ✅          | direct to the slave                        |
 * | npm basic-ftp     | `client.send("PRET …")`, `allowSeparateTransferHost: false`        | ✅    | ✅   | ✅     | ✅       | ✅       | ✅       | ✅     | ✅     | ✅          | relayed by the master (PRET, 227 ignored)  |
 * | tnftp             | default (`passive on`, EPSV, no PRET)                              | ✅    | ✅   | ✅     | ✅       | ✅       | ✅       | ✅     | ✅     | ✅          | relayed by the master (no PRET)            |
 * | tnftp             | `quote PRET …` before each transfer, slaves on 127.0.0.1           | ✅    | ✅   | ✅     | ✅       | ✅       | ✅       | ✅     | ✅     | ✅          | direct to the slave                        |
 * | tnftp             | `quote PRET …`, slaves on another address                          | ✅    | ✅   | ❌     | ❌       | ❌       | ❌       | ✅³    | ✅³    | ✅³         | refused by tnftp³                          |
 *
 * ¹ lftp always replaces a 227 address in 127/8 other than 127.0.0.1 by the control address
 *   (even with `ftp:fix-pasv-address false`), so on one host its slaves must be on 127.0.0.1 for
 *   direct transfers; across real hosts it connects to the slave.
 * ² basic-ftp 5.3 tries EPSV first: after PRET that is refused (425, the slave is on another
 *   address) and it falls back to PASV, keeping the PRET; `allowSeparateTransferHost` is true by
 *   default in 5.3.
 * ³ "Passive mode address mismatch": tnftp refuses a 227 address other than the control
 *   connection's (pinned by the last test for put, get and ls); without PRET (its default) it
 *   works through the relay. Rename, delete, mkdir/rmdir use no data connection, as above.
 *   Resume ↓/↑ are `reget` and `restart N` + `put`.
 */

import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
// the brief's way to use an npm client without touching deno.json
// deno-lint-ignore no-import-prefix
import { Client as BasicFtp } from "npm:basic-ftp@5";
import {
  crc32Hex,
  curl,
  CURL_BASE,
  describeRun,
  freePort,
  FtpControl,
  makeSite,
  poll,
  randomBytes,
  run,
  type RunResult,
  sha256,
  type Site,
  type SiteOptions,
  slavesHolding,
  tempDir,
} from "../testing/mod.ts";

const decoder = new TextDecoder();

// ------------------------------------------------------------------------------ the drivers

/** One client, one operation per method; each throws when the client reports a failure. */
interface Driver {
  login(): Promise<void>;
  mkdir(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  upload(local: string, remote: string): Promise<void>;
  /** Returns the listing as the client shows it. */
  list(dir: string): Promise<string>;
  download(remote: string, local: string): Promise<void>;
  /** Completes the partial `local` from where it ends. */
  resumeDownload(remote: string, local: string): Promise<void>;
  /** Completes the partial `remote` from the full `local`. */
  resumeUpload(local: string, remote: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  delete(path: string): Promise<void>;
}

/** How the data of a transfer travelled, judged from the master's log. */
type DataPath = "direct" | "proxy" | "relay";

const PATH_TEXT: Record<DataPath, string> = {
  direct: "direct to the slave",
  proxy: "relayed by the master (PRET sent, 227 address ignored)",
  relay: "relayed by the master (no PRET)",
};

interface Variant {
  client: string;
  config: string;
  /** Short id, also the remote folder the variant works in. */
  id: string;
  /** Slave addresses: "far" = 127.0.0.2 + 127.0.0.3, "local" = 127.0.0.1 twice. */
  slaves: "far" | "local";
  /** Expected data path of uploads and downloads. */
  path: DataPath;
  /**
   * With the default `pasv_without_pret = "slave"`: no byte relayed by the master ("zero"), some
   * ("relayed": the client ignores the slave's address in 227 replies), or the client refuses to
   * transfer at all ("fails").
   */
  onDefaults: "zero" | "relayed" | "fails";
  /** Why the variant cannot run here (binary missing), or undefined. */
  skip?: string;
  make(site: Site, work: string): Driver;
}

function check(what: string, r: RunResult, extraFailure?: RegExp): RunResult {
  if (!r.success || r.timedOut || (extraFailure && extraFailure.test(r.stdout + r.stderr))) {
    throw new Error(describeRun(what, r));
  }
  return r;
}

// ---- curl

function curlDriver(site: Site, flags: string[]): Driver {
  const go = async (what: string, args: string[]) =>
    check(`curl ${what}`, await curl([...CURL_BASE, ...flags, ...args]));
  const quote = (cmds: string[]) =>
    go(cmds.join("; "), [...cmds.flatMap((c) => ["-Q", c]), "-I", site.url("/")]);
  return {
    login: async () => void await go("login", ["-I", site.url("/")]),
    mkdir: async (p) => void await quote([`MKD ${p}`]),
    rmdir: async (p) => void await quote([`RMD ${p}`]),
    upload: async (l, r) => void await go("upload", ["-T", l, site.url(r)]),
    list: async (d) => (await go("list", [site.url(`${d}/`)])).stdout,
    download: async (r, l) => void await go("download", ["-o", l, site.url(r)]),
    resumeDownload: async (r, l) =>
      void await go("resume download", ["-C", "-", "-o", l, site.url(r)]),
    resumeUpload: async (l, r) => void await go("resume upload", ["-C", "-", "-T", l, site.url(r)]),
    rename: async (a, b) => void await quote([`RNFR ${a}`, `RNTO ${b}`]),
    delete: async (p) => void await quote([`DELE ${p}`]),
  };
}

// ---- lftp

function lftpDriver(site: Site, settings: string[]): Driver {
  const go = async (what: string, cmd: string) => {
    const script = [
      "set cmd:fail-exit true",
      "set ftp:ssl-allow false",
      "set net:max-retries 1",
      "set net:timeout 20",
      "set net:reconnect-interval-base 1",
      "set xfer:clobber true",
      ...settings,
      cmd,
      "bye",
    ].join("; ");
    return check(
      `lftp ${what}`,
      await run("lftp", [
        "-d",
        "-u",
        `${site.user},${site.pass}`,
        "-p",
        String(site.ftpPort),
        "-e",
        script,
        site.host,
      ], {
        timeoutMs: 60_000,
        env: { HOME: Deno.env.get("HOME") ?? "/tmp", PATH: Deno.env.get("PATH") ?? "" },
      }),
    );
  };
  return {
    login: async () => void await go("login", "quote NOOP"),
    mkdir: async (p) => void await go("mkdir", `mkdir ${p}`),
    rmdir: async (p) => void await go("rmdir", `rmdir ${p}`),
    upload: async (l, r) => void await go("upload", `put ${l} -o ${r}`),
    list: async (d) => (await go("list", `ls ${d}`)).stdout,
    download: async (r, l) => void await go("download", `get ${r} -o ${l}`),
    resumeDownload: async (r, l) => void await go("resume download", `get -c ${r} -o ${l}`),
    resumeUpload: async (l, r) => void await go("resume upload", `put -c ${l} -o ${r}`),
    rename: async (a, b) => void await go("rename", `mv ${a} ${b}`),
    delete: async (p) => void await go("delete", `rm ${p}`),
  };
}

// ---- Python ftplib

const FTPLIB_SCRIPT = `
import ftplib, json, os, sys
cfg = json.loads(sys.argv[1])
ftp = ftplib.FTP()
ftp.connect(cfg["host"], cfg["port"], timeout=30)
ftp.login(cfg["user"], cfg["pass"])
if cfg["trust"]:
    ftp.trust_server_pasv_ipv4_address = True
def pret(cmd):
    if cfg["pret"]:
        ftp.sendcmd("PRET " + cmd)
op, a = cfg["op"], cfg["args"]
if op == "login":
    ftp.voidcmd("NOOP")
elif op == "mkdir":
    ftp.mkd(a[0])
elif op == "rmdir":
    ftp.rmd(a[0])
elif op == "upload":
    with open(a[0], "rb") as f:
        pret("STOR " + a[1])
        ftp.storbinary("STOR " + a[1], f)
elif op == "list":
    lines = []
    pret("LIST " + a[0])
    ftp.retrlines("LIST " + a[0], lines.append)
    print("\\n".join(lines))
elif op == "download":
    with open(a[1], "wb") as f:
        pret("RETR " + a[0])
        ftp.retrbinary("RETR " + a[0], f.write)
elif op == "resume_download":
    n = os.path.getsize(a[1])
    with open(a[1], "ab") as f:
        pret("RETR " + a[0])
        ftp.retrbinary("RETR " + a[0], f.write, rest=n)
elif op == "resume_upload":
    ftp.voidcmd("TYPE I")
    n = ftp.size(a[1])
    with open(a[0], "rb") as f:
        f.seek(n)
        pret("STOR " + a[1])
        ftp.storbinary("STOR " + a[1], f, rest=n)
elif op == "rename":
    ftp.rename(a[0], a[1])
elif op == "delete":
    ftp.delete(a[0])
ftp.quit()
`;

function ftplibDriver(site: Site, opts: { pret: boolean; trust: boolean }): Driver {
  const go = async (op: string, args: string[]) => {
    const cfg = {
      host: site.host,
      port: site.ftpPort,
      user: site.user,
      pass: site.pass,
      op,
      args,
      ...opts,
    };
    return check(
      `ftplib ${op}`,
      await run("python3", ["-c", FTPLIB_SCRIPT, JSON.stringify(cfg)], { timeoutMs: 60_000 }),
    );
  };
  return {
    login: async () => void await go("login", []),
    mkdir: async (p) => void await go("mkdir", [p]),
    rmdir: async (p) => void await go("rmdir", [p]),
    upload: async (l, r) => void await go("upload", [l, r]),
    list: async (d) => (await go("list", [d])).stdout,
    download: async (r, l) => void await go("download", [r, l]),
    resumeDownload: async (r, l) => void await go("resume_download", [r, l]),
    resumeUpload: async (l, r) => void await go("resume_upload", [l, r]),
    rename: async (a, b) => void await go("rename", [a, b]),
    delete: async (p) => void await go("delete", [p]),
  };
}

// ---- npm basic-ftp (in process)

function basicFtpDriver(
  site: Site,
  opts: { pret: boolean; allowSeparateTransferHost?: boolean },
): Driver {
  const session = async <T>(fn: (c: BasicFtp) => Promise<T>): Promise<T> => {
    const c = new BasicFtp(30_000, {
      allowSeparateTransferHost: opts.allowSeparateTransferHost ?? true,
    });
    try {
      await c.access({
        host: site.host,
        port: site.ftpPort,
        user: site.user,
        password: site.pass,
        secure: false,
      });
      return await fn(c);
    } finally {
      c.close();
    }
  };
  const pret = async (c: BasicFtp, cmd: string) => {
    if (opts.pret) await c.send(`PRET ${cmd}`);
  };
  return {
    login: () => session(async (c) => void await c.send("NOOP")),
    mkdir: (p) => session(async (c) => void await c.ensureDir(p)),
    rmdir: (p) => session(async (c) => void await c.removeEmptyDir(p)),
    upload: (l, r) =>
      session(async (c) => {
        await pret(c, `STOR ${r}`);
        await c.uploadFrom(l, r);
      }),
    list: (d) =>
      session(async (c) => {
        await pret(c, `MLSD ${d}`);
        return (await c.list(d)).map((f) => `${f.isDirectory ? "d" : "-"} ${f.size} ${f.name}`)
          .join("\n");
      }),
    download: (r, l) =>
      session(async (c) => {
        await pret(c, `RETR ${r}`);
        await c.downloadTo(l, r);
      }),
    resumeDownload: (r, l) =>
      session(async (c) => {
        const n = (await Deno.stat(l)).size;
        await pret(c, `RETR ${r}`);
        await c.downloadTo(l, r, n);
      }),
    resumeUpload: (l, r) =>
      session(async (c) => {
        const n = await c.size(r);
        await pret(c, `APPE ${r}`);
        await c.appendFrom(createReadStream(l, { start: n }), r);
      }),
    rename: (a, b) => session(async (c) => void await c.rename(a, b)),
    delete: (p) => session(async (c) => void await c.remove(p)),
  };
}

// ---- tnftp (NetBSD ftp), scripted through stdin

/** Failure signs in tnftp's verbose output (it exits 0 after failed commands). */
const TNFTP_FAILURE =
  /^[45]\d\d |Passive mode address mismatch|Not connected|Login failed|Can't connect|No control connection/m;

function tnftpDriver(site: Site, opts: { pret: boolean }): Driver {
  const go = async (what: string, cmds: string[]) => {
    const script = [
      `open ${site.host} ${site.ftpPort}`,
      `user ${site.user} ${site.pass}`,
      "binary",
      "passive on",
      ...cmds,
      "quit",
      "",
    ].join("\n");
    return check(
      `tnftp ${what}`,
      await run("tnftp", ["-n", "-v"], { stdin: script, timeoutMs: 60_000 }),
      TNFTP_FAILURE,
    );
  };
  const pret = (cmd: string) => (opts.pret ? [`quote PRET ${cmd}`] : []);
  return {
    login: async () => void await go("login", ["pwd"]),
    mkdir: async (p) => void await go("mkdir", [`mkdir ${p}`]),
    rmdir: async (p) => void await go("rmdir", [`rmdir ${p}`]),
    upload: async (l, r) => void await go("upload", [...pret(`STOR ${r}`), `put ${l} ${r}`]),
    list: async (d) => (await go("list", [...pret(`LIST ${d}`), `ls ${d}`])).stdout,
    download: async (r, l) => void await go("download", [...pret(`RETR ${r}`), `get ${r} ${l}`]),
    resumeDownload: async (r, l) =>
      void await go("resume download", [...pret(`RETR ${r}`), `reget ${r} ${l}`]),
    resumeUpload: async (l, r) => {
      // tnftp's own upload resume: "restart N" before "put" (REST N + STOR from offset N)
      const size = await sizeOf(site, r);
      await go("resume upload", [`restart ${size}`, ...pret(`STOR ${r}`), `put ${l} ${r}`]);
    },
    rename: async (a, b) => void await go("rename", [`rename ${a} ${b}`]),
    delete: async (p) => void await go("delete", [`delete ${p}`]),
  };
}

/** SIZE over a raw connection (tnftp's `restart` needs the offset from the user). */
async function sizeOf(site: Site, path: string): Promise<number> {
  await using ftp = await site.control();
  const r = await ftp.send(`SIZE ${path}`);
  if (r.code !== 213) throw new Error(`SIZE ${path}: ${r.lines.join(" | ")}`);
  return Number(r.text.trim());
}

// ---- raw control connection (the harness's FtpControl): PRET + PASV, straight to the slave

function rawDriver(site: Site): Driver {
  const session = async <T>(fn: (f: FtpControl) => Promise<T>): Promise<T> => {
    await using ftp = await site.control();
    return await fn(ftp);
  };
  const expect = async (f: FtpControl, cmd: string, code: number) => {
    const r = await f.send(cmd);
    if (r.code !== code) throw new Error(`${cmd}: ${r.lines.join(" | ")}`);
  };
  return {
    login: () =>
      session(async (f) => {
        // FEAT advertises PRET (lftp's `ftp:use-pret auto` relies on it)
        const feat = await f.send("FEAT");
        if (feat.code !== 211 || !feat.lines.some((l) => /^ PRET\b/.test(l))) {
          throw new Error(`FEAT does not list PRET: ${feat.lines.join(" | ")}`);
        }
      }),
    mkdir: (p) => session((f) => expect(f, `MKD ${p}`, 257)),
    rmdir: (p) => session((f) => expect(f, `RMD ${p}`, 250)),
    upload: (l, r) => session(async (f) => void await f.store(r, await Deno.readFile(l))),
    list: (d) =>
      session(async (f) =>
        decoder.decode((await f.transfer(await f.pasv(`LIST ${d}`), `LIST ${d}`)).data)
      ),
    download: (r, l) => session(async (f) => await Deno.writeFile(l, (await f.retrieve(r)).data)),
    resumeDownload: (r, l) =>
      session(async (f) => {
        const n = (await Deno.stat(l)).size;
        await Deno.writeFile(l, (await f.retrieve(r, n)).data, { append: true });
      }),
    resumeUpload: (l, r) =>
      session(async (f) => {
        const size = await f.send(`SIZE ${r}`);
        if (size.code !== 213) throw new Error(`SIZE ${r}: ${size.lines.join(" | ")}`);
        const bytes = (await Deno.readFile(l)).subarray(Number(size.text.trim()));
        await f.transfer(await f.pasv(`APPE ${r}`), `APPE ${r}`, { upload: bytes });
      }),
    rename: (a, b) =>
      session(async (f) => {
        await expect(f, `RNFR ${a}`, 350);
        await expect(f, `RNTO ${b}`, 250);
      }),
    delete: (p) => session((f) => expect(f, `DELE ${p}`, 250)),
  };
}

// ------------------------------------------------------------------------------ the variants

function has(bin: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${bin}`).isFile) return true;
    } catch {
      // next
    }
  }
  return false;
}

function missing(bin: string): { skip?: string } {
  return has(bin) ? {} : { skip: `${bin} is not installed` };
}

const VARIANTS: Variant[] = [
  {
    client: "raw socket (FtpControl)",
    config: "`PRET` + `PASV`, honours the 227 address",
    id: "raw",
    onDefaults: "zero",
    slaves: "far",
    path: "direct",
    make: (site) => rawDriver(site),
  },
  {
    client: "curl",
    config: "default (no PRET, `--ftp-skip-pasv-ip`)",
    id: "curl-default",
    onDefaults: "relayed",
    slaves: "far",
    path: "relay",
    ...missing("curl"),
    make: (site) => curlDriver(site, []),
  },
  {
    client: "curl",
    config: "`--ftp-pret --no-ftp-skip-pasv-ip`",
    id: "curl-pret",
    onDefaults: "zero",
    slaves: "far",
    path: "direct",
    ...missing("curl"),
    make: (site) => curlDriver(site, ["--ftp-pret", "--no-ftp-skip-pasv-ip"]),
  },
  {
    client: "curl",
    config: "`--ftp-pret` (still skips the 227 address)",
    id: "curl-pret-skip",
    onDefaults: "relayed",
    slaves: "far",
    path: "proxy",
    ...missing("curl"),
    make: (site) => curlDriver(site, ["--ftp-pret"]),
  },
  {
    client: "lftp",
    config: "default (`ftp:use-pret auto` sends PRET; `ftp:fix-pasv-address` rewrites 127.0.0.2)",
    id: "lftp-default",
    onDefaults: "relayed",
    slaves: "far",
    path: "proxy",
    ...missing("lftp"),
    make: (site) => lftpDriver(site, []),
  },
  {
    client: "lftp",
    config: "default; slaves on the master's address (127.0.0.1)",
    id: "lftp-local",
    onDefaults: "zero",
    slaves: "local",
    path: "direct",
    ...missing("lftp"),
    make: (site) => lftpDriver(site, []),
  },
  {
    client: "Python ftplib",
    config: "default (no PRET, ignores the 227 address)",
    id: "ftplib-default",
    onDefaults: "relayed",
    slaves: "far",
    path: "relay",
    ...missing("python3"),
    make: (site) => ftplibDriver(site, { pret: false, trust: false }),
  },
  {
    client: "Python ftplib",
    config: '`sendcmd("PRET …")` + `trust_server_pasv_ipv4_address = True`',
    id: "ftplib-pret",
    onDefaults: "zero",
    slaves: "far",
    path: "direct",
    ...missing("python3"),
    make: (site) => ftplibDriver(site, { pret: true, trust: true }),
  },
  {
    client: "Python ftplib",
    config: '`sendcmd("PRET …")`, default trust (ignores the 227 address)',
    id: "ftplib-pret-untrusted",
    onDefaults: "relayed",
    slaves: "far",
    path: "proxy",
    ...missing("python3"),
    make: (site) => ftplibDriver(site, { pret: true, trust: false }),
  },
  {
    client: "npm basic-ftp",
    config: "default (EPSV, no PRET)",
    id: "basicftp-default",
    onDefaults: "zero",
    slaves: "far",
    path: "relay",
    make: (site) => basicFtpDriver(site, { pret: false }),
  },
  {
    client: "npm basic-ftp",
    config: '`client.send("PRET …")` + `allowSeparateTransferHost: true`',
    id: "basicftp-pret",
    onDefaults: "zero",
    slaves: "far",
    path: "direct",
    make: (site) => basicFtpDriver(site, { pret: true, allowSeparateTransferHost: true }),
  },
  {
    client: "npm basic-ftp",
    config: '`client.send("PRET …")` + `allowSeparateTransferHost: false`',
    id: "basicftp-pret-controlhost",
    onDefaults: "relayed",
    slaves: "far",
    path: "proxy",
    make: (site) => basicFtpDriver(site, { pret: true, allowSeparateTransferHost: false }),
  },
  {
    client: "tnftp",
    config: "default (`passive on`, EPSV, no PRET)",
    id: "tnftp-default",
    onDefaults: "fails",
    slaves: "far",
    path: "relay",
    ...missing("tnftp"),
    make: (site) => tnftpDriver(site, { pret: false }),
  },
  {
    client: "tnftp",
    config: "`quote PRET …` before each transfer; slaves on the master's address",
    id: "tnftp-pret",
    onDefaults: "zero",
    slaves: "local",
    path: "direct",
    ...missing("tnftp"),
    make: (site) => tnftpDriver(site, { pret: true }),
  },
];

const OPS = [
  "login",
  "list",
  "upload",
  "download",
  "resume ↓",
  "resume ↑",
  "rename",
  "delete",
  "mkdir/rmdir",
] as const;
type OpName = (typeof OPS)[number];

/** Results per variant id, for the summary table. */
const results = new Map<string, { ops: Partial<Record<OpName, boolean>>; path: string[] }>();

// ------------------------------------------------------------------------------ checks

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The master log written since `from` (a length of an earlier read). */
async function logSince(site: Site, from: number): Promise<string> {
  return (await site.log("master")).slice(from);
}

/**
 * Which data path a transfer of `path` took, from the master log written during it: waits
 * (bounded) for the transfer's log line, then looks for PRET and the relay note.
 */
async function dataPath(
  site: Site,
  from: number,
  verb: "STOR|APPE" | "RETR",
  path: string,
): Promise<DataPath> {
  const done = new RegExp(`\\b(?:${verb}) \\S+ ${escapeRe(path)} \\d+ bytes`);
  const text = await poll(async () => {
    const t = await logSince(site, from);
    return done.test(t) ? t : undefined;
  }, {
    timeoutMs: 10_000,
    describe: async () => `the master to log ${verb} ${path}\n${await logSince(site, from)}`,
  });
  if (
    new RegExp(`${escapeRe(path)}: the client ignored the PASV address; master relayed \\d+ bytes`)
      .test(text)
  ) {
    return "proxy";
  }
  return /> PRET /.test(text) ? "direct" : "relay";
}

interface Verifier {
  ftp: FtpControl;
  code(cmd: string): Promise<number>;
  size(path: string): Promise<number | null>;
}

async function verifier(site: Site): Promise<Verifier & AsyncDisposable> {
  const ftp = await site.control();
  const code = async (cmd: string) => (await ftp.send(cmd)).code;
  return {
    ftp,
    code,
    size: async (path) => {
      const r = await ftp.send(`SIZE ${path}`);
      return r.code === 213 ? Number(r.text.trim()) : null;
    },
    [Symbol.asyncDispose]: () => ftp.quit(),
  };
}

/** Asserts exactly one slave holds `path` with exactly `bytes`. */
async function assertStored(site: Site, path: string, bytes: Uint8Array): Promise<void> {
  const rel = path.slice(1);
  const holders = await slavesHolding(site, rel);
  assert.equal(holders.length, 1, `${path} should be on one slave, is on [${holders.join(", ")}]`);
  const onDisk = await Deno.readFile(`${site.slaveRoot(holders[0]!)}/${rel}`);
  assert.equal(onDisk.length, bytes.length, `size of ${path} on ${holders[0]}`);
  assert.equal(await sha256(onDisk), await sha256(bytes), `bytes of ${path} on ${holders[0]}`);
}

// ------------------------------------------------------------------------------ the test

const SIZE = 400_000;
const PARTIAL = 123_457;

async function runVariant(t: Deno.TestContext, v: Variant, site: Site): Promise<void> {
  const record = { ops: {} as Partial<Record<OpName, boolean>>, path: [] as string[] };
  results.set(v.id, record);
  await using work = await tempDir(`drftpd-client-${v.id}-`);
  await using check = await verifier(site);
  const d = v.make(site, work.path);
  const dir = `/${v.id}`;
  const bytes = randomBytes(SIZE);
  const src = `${work.path}/src.bin`;
  await Deno.writeFile(src, bytes);
  assert.equal(await check.code(`MKD ${dir}`), 257);

  const op = async (name: OpName, fn: () => Promise<void>) => {
    const ok = await t.step(name, fn);
    // an operation shown in two steps (upload/download also check the data path) must pass both
    record.ops[name] = (record.ops[name] ?? true) && ok;
  };

  await op("login", () => d.login());

  await op("mkdir/rmdir", async () => {
    await d.mkdir(`${dir}/d1`);
    await d.mkdir(`${dir}/d2`);
    assert.equal(await check.code(`CWD ${dir}/d1`), 250, "d1 was not created");
    assert.equal(await check.code(`CWD ${dir}/d2`), 250, "d2 was not created");
    await d.rmdir(`${dir}/d2`);
    assert.equal(await check.code(`CWD ${dir}/d2`), 550, "d2 was not removed");
    assert.equal(await check.code(`CWD ${dir}/d1`), 250, "d1 is gone");
    await check.code("CWD /");
  });

  await op("upload", async () => {
    const from = (await site.log("master")).length;
    await d.upload(src, `${dir}/up.bin`);
    assert.equal(await check.size(`${dir}/up.bin`), SIZE);
    const xcrc = await check.ftp.send(`XCRC ${dir}/up.bin`);
    assert.equal(xcrc.text.trim().toLowerCase(), crc32Hex(bytes), xcrc.lines.join(" | "));
    await assertStored(site, `${dir}/up.bin`, bytes);
    const path = await dataPath(site, from, "STOR|APPE", `${dir}/up.bin`);
    record.path.push(`↑ ${path}`);
    assert.equal(path, v.path, `upload data path (master log:\n${await logSince(site, from)})`);
  });

  await op("list", async () => {
    const text = await d.list(dir);
    assert.match(text, /\bup\.bin\b/, `listing of ${dir}:\n${text}`);
    assert.match(text, /\bd1\b/, `listing of ${dir}:\n${text}`);
  });

  await op("download", async () => {
    const from = (await site.log("master")).length;
    const out = `${work.path}/down.bin`;
    await d.download(`${dir}/up.bin`, out);
    assert.equal(await sha256(await Deno.readFile(out)), await sha256(bytes), "downloaded bytes");
    const path = await dataPath(site, from, "RETR", `${dir}/up.bin`);
    record.path.push(`↓ ${path}`);
    assert.equal(path, v.path, `download data path (master log:\n${await logSince(site, from)})`);
  });

  await op("resume ↓", async () => {
    const out = `${work.path}/partial-down.bin`;
    await Deno.writeFile(out, bytes.subarray(0, PARTIAL));
    const from = (await site.log("master")).length;
    await d.resumeDownload(`${dir}/up.bin`, out);
    const got = await Deno.readFile(out);
    assert.equal(got.length, SIZE, "resumed download size");
    assert.equal(await sha256(got), await sha256(bytes), "resumed download bytes");
    await dataPath(site, from, "RETR", `${dir}/up.bin`);
    assert.match(await logSince(site, from), new RegExp(`> REST ${PARTIAL}\\b`), "no REST sent");
  });

  await op("resume ↑", async () => {
    const part = `${dir}/part.bin`;
    await check.ftp.store(part, bytes.subarray(0, PARTIAL));
    const from = (await site.log("master")).length;
    await d.resumeUpload(src, part);
    assert.equal(await check.size(part), SIZE, "resumed upload size");
    await assertStored(site, part, bytes);
    await dataPath(site, from, "STOR|APPE", part);
    assert.match(
      await logSince(site, from),
      new RegExp(`> (?:APPE \\S+|REST ${PARTIAL})\\b`),
      "neither APPE nor REST was sent",
    );
  });

  await op("rename", async () => {
    await d.rename(`${dir}/up.bin`, `${dir}/ren.bin`);
    assert.equal(await check.size(`${dir}/up.bin`), null, "up.bin still there");
    assert.equal(await check.size(`${dir}/ren.bin`), SIZE, "ren.bin missing");
    await assertStored(site, `${dir}/ren.bin`, bytes);
  });

  await op("delete", async () => {
    await d.delete(`${dir}/ren.bin`);
    assert.equal(await check.size(`${dir}/ren.bin`), null, "ren.bin still listed");
    assert.deepEqual(
      await slavesHolding(site, `${dir.slice(1)}/ren.bin`),
      [],
      "ren.bin still on disk",
    );
  });
}

/** What each variant cost the master on default settings, for the summary table. */
const onDefaults = new Map<string, string>();

/** File bytes the master relayed so far (every `via` of `drftpd_relayed_bytes_total`). */
async function relayedSoFar(metrics: string): Promise<number> {
  const text = await (await fetch(metrics)).text();
  let sum = 0;
  for (const m of text.matchAll(/^drftpd_relayed_bytes_total\{[^}]*\} (\d+)$/gm)) {
    sum += Number(m[1]);
  }
  return sum;
}

/**
 * One variant on a site with default settings (`pasv_without_pret = "slave"`): upload, list and
 * download, and the file bytes the master relayed meanwhile (its /metrics at `metrics`).
 */
async function runOnDefaults(v: Variant, site: Site, metrics: string): Promise<void> {
  await using work = await tempDir(`drftpd-client-${v.id}-`);
  await using check = await verifier(site);
  const d = v.make(site, work.path);
  const dir = `/${v.id}`;
  const bytes = randomBytes(SIZE);
  const src = `${work.path}/src.bin`;
  const out = `${work.path}/down.bin`;
  await Deno.writeFile(src, bytes);
  assert.equal(await check.code(`MKD ${dir}`), 257);
  const before = await relayedSoFar(metrics);
  let failure: string | null = null;
  try {
    await d.upload(src, `${dir}/up.bin`);
    await assertStored(site, `${dir}/up.bin`, bytes);
    const text = await d.list(dir);
    assert.match(text, /\bup\.bin\b/, `listing of ${dir}:\n${text}`);
    await d.download(`${dir}/up.bin`, out);
    assert.equal(await sha256(await Deno.readFile(out)), await sha256(bytes), "downloaded bytes");
  } catch (e) {
    failure = e instanceof Error ? e.message : String(e);
  }
  const relayed = (await relayedSoFar(metrics)) - before;
  onDefaults.set(
    v.id,
    failure !== null
      ? "fails"
      : relayed === 0
      ? "0"
      : `${relayed} (${Math.round((100 * relayed) / (2 * SIZE))}% of the bytes moved)`,
  );
  if (v.onDefaults === "fails") {
    assert.notEqual(failure, null, `${v.id} should fail on default settings`);
    return;
  }
  assert.equal(failure, null, `${v.id} on default settings: ${failure}`);
  if (v.onDefaults === "zero") assert.equal(relayed, 0, `${v.id}: bytes relayed by the master`);
  else assert.ok(relayed > 0, `${v.id}: expected the master to relay`);
}

const FAR: SiteOptions["slaves"] = [
  { name: "s2", address: "127.0.0.2" },
  { name: "s3", address: "127.0.0.3" },
];
const LOCAL: SiteOptions["slaves"] = [
  { name: "l1", address: "127.0.0.1" },
  { name: "l2", address: "127.0.0.1" },
];

Deno.test({
  name: "client matrix",
  // basic-ftp runs in this process on node:net; its sockets close asynchronously
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    // the relay for clients without PRET, as before "slave" became the default (whose paths
    // tests/e2e_no_pret_test.ts covers)
    await using far = await makeSite({ slaves: FAR, pasvWithoutPret: "relay" });
    await using local = await makeSite({ slaves: LOCAL, pasvWithoutPret: "relay" });
    for (const v of VARIANTS) {
      await t.step({
        name: `${v.client}: ${v.config}`,
        ignore: v.skip !== undefined,
        fn: (t) => runVariant(t, v, v.slaves === "far" ? far : local),
      });
    }
    // the same clients on default settings: upload, list, download, and what the master carried
    const http = { far: freePort(), local: freePort() };
    await using farDefault = await makeSite({ slaves: FAR, http: `127.0.0.1:${http.far}` });
    await using localDefault = await makeSite({ slaves: LOCAL, http: `127.0.0.1:${http.local}` });
    for (const v of VARIANTS) {
      await t.step({
        name: `default settings: ${v.client}: ${v.config}`,
        ignore: v.skip !== undefined,
        fn: () =>
          runOnDefaults(
            v,
            v.slaves === "far" ? farDefault : localDefault,
            `http://127.0.0.1:${http[v.slaves]}/metrics`,
          ),
      });
    }
    console.log(matrixTable());
  },
});

Deno.test("tnftp refuses a 227 address other than the control connection's", {
  ignore: !has("tnftp"),
}, async () => {
  await using site = await makeSite({ slaves: [{ name: "s2", address: "127.0.0.2" }] });
  await using ftp = await site.control();
  await ftp.store("/f.bin", randomBytes(1000));
  await using work = await tempDir();
  await Deno.writeFile(`${work.path}/up.bin`, randomBytes(1000));
  const tnftp = (cmds: string[]) =>
    run("tnftp", ["-n", "-v"], {
      stdin: [
        `open ${site.host} ${site.ftpPort}`,
        `user ${site.user} ${site.pass}`,
        "binary",
        "passive on",
        ...cmds,
        "quit",
        "",
      ].join("\n"),
      timeoutMs: 30_000,
    });
  const get = await tnftp(["quote PRET RETR /f.bin", `get /f.bin ${work.path}/f.bin`]);
  assert.match(get.stdout + get.stderr, /Passive mode address mismatch/, describeRun("get", get));
  const put = await tnftp(["quote PRET STOR /up.bin", `put ${work.path}/up.bin /up.bin`]);
  assert.match(put.stdout + put.stderr, /Passive mode address mismatch/, describeRun("put", put));
  assert.equal((await ftp.send("SIZE /up.bin")).code, 550, "nothing was uploaded");
  // listings are served by the master itself, on the control connection's address
  const ls = await tnftp(["quote PRET LIST /", "ls /"]);
  assert.match(ls.stdout, / f\.bin\r?\n/, describeRun("ls", ls));
  assert.doesNotMatch(ls.stdout + ls.stderr, TNFTP_FAILURE, describeRun("ls", ls));
});

Deno.test('tnftp on default settings with epsv_without_pret = "master": relayed, and it works', {
  ignore: !has("tnftp"),
}, async () => {
  const http = freePort();
  await using site = await makeSite({
    slaves: FAR,
    http: `127.0.0.1:${http}`,
    masterExtra: 'epsv_without_pret = "master"',
  });
  await using work = await tempDir();
  const bytes = randomBytes(200_000 + 3);
  await Deno.writeFile(`${work.path}/up.bin`, bytes);
  const metrics = `http://127.0.0.1:${http}/metrics`;
  const before = await relayedSoFar(metrics);
  const r = await run("tnftp", ["-n", "-v"], {
    stdin: [
      `open ${site.host} ${site.ftpPort}`,
      `user ${site.user} ${site.pass}`,
      "binary",
      `put ${work.path}/up.bin /up.bin`,
      "ls /",
      `get /up.bin ${work.path}/down.bin`,
      "quit",
      "",
    ].join("\n"),
    timeoutMs: 60_000,
  });
  // with the default ("pasv") tnftp fails here: "Passive mode address mismatch"
  assert.doesNotMatch(r.stdout + r.stderr, TNFTP_FAILURE, describeRun("tnftp", r));
  assert.match(r.stdout, / up\.bin\r?\n/, describeRun("tnftp ls", r));
  await assertStored(site, "/up.bin", bytes);
  assert.equal(
    await sha256(await Deno.readFile(`${work.path}/down.bin`)),
    await sha256(bytes),
    "downloaded bytes",
  );
  // EPSV was served by the master: it carried the upload and the download
  assert.ok(
    (await relayedSoFar(metrics)) - before >= 2 * bytes.length,
    "the master did not relay tnftp's transfers",
  );
});

function matrixTable(): string {
  const rows = VARIANTS.map((v) => {
    const r = results.get(v.id);
    const cells = OPS.map((
      o,
    ) => (v.skip ? "skipped" : r?.ops[o] === undefined ? "–" : r.ops[o] ? "✅" : "❌"));
    const path = v.skip ? v.skip : PATH_TEXT[v.path] +
      (r && r.path.some((p) => !p.endsWith(v.path)) ? ` (saw ${r.path.join(", ")})` : "");
    const master = v.skip ? "skipped" : onDefaults.get(v.id) ?? "–";
    return `| ${v.client} | ${v.config} | ${cells.join(" | ")} | ${path} | ${master} |`;
  });
  return [
    "| Client | Configuration | " + OPS.join(" | ") +
    " | Data path | Default settings: master bytes |",
    "| --- | --- | " + OPS.map(() => "---").join(" | ") + " | --- | --- |",
    ...rows,
  ].join("\n");
}
