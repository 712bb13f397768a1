/**
 * Starts a vsftpd for the bench: config in a temp dir, loopback, a high port, anonymous login with
 * uploads into `/pub`. Needs root (vsftpd chroots anonymous sessions); `listen=YES` with
 * `background=NO` keeps it in the foreground so the bench owns and kills the process.
 *
 * @module
 */
import { FtpControl, prepareVsftpd } from "../testing/mod.ts";
import { deadline, sleep } from "../shared/timers.ts";
import { spawnTracked, stopChild } from "./_util.ts";

/** A running vsftpd. `root/pub` is the writable folder clients see as `/pub`. */
export interface Vsftpd extends AsyncDisposable {
  host: string;
  port: number;
  user: string;
  pass: string;
  /** Folder clients see as "/" (owned by root, not writable, as vsftpd demands). */
  root: string;
  /** Folder clients see as "/pub" (writable). */
  pub: string;
  pid: number;
  url(path: string): string;
}

/** Where the vsftpd binary is, or null when it is not installed. */
export async function findVsftpd(): Promise<string | null> {
  for (const p of ["/usr/sbin/vsftpd", "/usr/local/sbin/vsftpd", "/usr/bin/vsftpd"]) {
    try {
      await Deno.stat(p);
      return p;
    } catch {
      // next
    }
  }
  return null;
}

/** Options of {@link startVsftpd}. */
export interface VsftpdOptions {
  /** `max_clients`; default 0 (no limit). */
  maxClients?: number;
  /**
   * PEM certificate and key files: TLS (`AUTH TLS`, `PROT P`) is then offered to anonymous
   * sessions too, and stays optional, so one vsftpd serves plain and TLS transfers.
   */
  tls?: { certFile: string; keyFile: string };
}

/** Starts vsftpd serving `dir/root`; fill `pub` before or after, it reads the disk live. */
export async function startVsftpd(dir: string, options: VsftpdOptions = {}): Promise<Vsftpd> {
  const bin = await findVsftpd();
  if (bin === null) throw new Error("vsftpd is not installed (apt-get install vsftpd)");
  const tls = options.tls
    ? [
      "ssl_enable=YES",
      "allow_anon_ssl=YES",
      "force_anon_logins_ssl=NO",
      "force_anon_data_ssl=NO",
      "require_ssl_reuse=NO",
      "ssl_tlsv1=YES",
      `rsa_cert_file=${options.tls.certFile}`,
      `rsa_private_key_file=${options.tls.keyFile}`,
    ]
    : [];
  const { conf, root, pub, port } = await prepareVsftpd(dir, {
    host: "127.0.0.1",
    passivePorts: 100,
    extra: [
      "use_sendfile=YES",
      `max_clients=${options.maxClients ?? 0}`,
      "idle_session_timeout=900",
      "data_connection_timeout=300",
      ...tls,
    ],
  });
  const child = spawnTracked(bin, [conf], { stdout: "null", stderr: "piped" });
  const errText = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let stderr = "";
  void (async () => {
    for (;;) {
      const { value, done } = await errText.read().catch(() => ({ value: "", done: true }));
      if (done) return;
      stderr += value;
    }
  })();
  const stop = () => stopChild(child, "SIGTERM", 3000);
  // wait until it answers with a working anonymous login
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      const ftp = await deadline(
        FtpControl.login({ host: "127.0.0.1", port: port }, {
          user: "anonymous",
          pass: "bench@",
          timeoutMs: 30_000,
        }),
        { ms: 3000, what: "login" },
      );
      await ftp.quit();
      break;
    } catch (e) {
      if (Date.now() > until) {
        await stop();
        throw new Error(`vsftpd did not come up: ${e}\n${stderr}`);
      }
      await sleep(100);
    }
  }
  return {
    host: "127.0.0.1",
    port,
    user: "anonymous",
    pass: "bench@",
    root,
    pub,
    pid: child.pid,
    url: (path) => `ftp://anonymous:bench%40@127.0.0.1:${port}${path}`,
    [Symbol.asyncDispose]: stop,
  };
}
