/**
 * The folders and config of an anonymous vsftpd with uploads into `/pub`, shared by the FXP tests
 * and the bench (each starts and watches the process its own way). Needs root: vsftpd chroots
 * anonymous sessions and refuses a chroot root the session user can write, so only `/pub` is
 * writable.
 */
import { freePort, freePortRange } from "./ports.ts";

/** uid and gid of a local user, or null when there is none. */
export async function passwdEntry(name: string): Promise<{ uid: number; gid: number } | null> {
  const passwd = await Deno.readTextFile("/etc/passwd");
  const line = passwd.split("\n").find((l) => l.startsWith(`${name}:`));
  if (!line) return null;
  const f = line.split(":");
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/** What {@link prepareVsftpd} made. */
export interface VsftpdSetup {
  /** The config file to pass to vsftpd. */
  conf: string;
  /** Folder clients see as "/". */
  root: string;
  /** Folder clients see as "/pub" (writable). */
  pub: string;
  port: number;
  passive: { from: number; to: number };
}

/**
 * Creates `dir/root/pub` and writes `dir/vsftpd.conf`: listening on `host` at a free port,
 * anonymous sessions as the `ftp` user (else `nobody`), `passivePorts` free passive ports
 * announced as `host`, then `extra` config lines.
 */
export async function prepareVsftpd(
  dir: string,
  options: { host: string; passivePorts: number; extra: readonly string[] },
): Promise<VsftpdSetup> {
  const root = `${dir}/root`;
  const pub = `${root}/pub`;
  const empty = `${dir}/empty`;
  await Deno.mkdir(pub, { recursive: true });
  await Deno.mkdir(empty, { recursive: true });
  for (const d of [dir, root, empty]) await Deno.chmod(d, 0o755);
  await Deno.chmod(pub, 0o777);
  const user = (await passwdEntry("ftp")) ? "ftp" : "nobody";
  const ids = await passwdEntry(user);
  await Deno.chown(pub, ids?.uid ?? 65534, ids?.gid ?? null);
  const port = freePort();
  const passive = freePortRange(options.passivePorts);
  const conf = `${dir}/vsftpd.conf`;
  await Deno.writeTextFile(
    conf,
    [
      "listen=YES",
      "listen_ipv6=NO",
      `listen_address=${options.host}`,
      `listen_port=${port}`,
      "background=NO",
      "anonymous_enable=YES",
      "local_enable=NO",
      "no_anon_password=YES",
      `ftp_username=${user}`,
      `nopriv_user=${user}`,
      `anon_root=${root}`,
      "write_enable=YES",
      "anon_upload_enable=YES",
      "anon_mkdir_write_enable=YES",
      "anon_other_write_enable=YES",
      "anon_world_readable_only=NO",
      "anon_umask=022",
      "pasv_enable=YES",
      `pasv_min_port=${passive.from}`,
      `pasv_max_port=${passive.to}`,
      `pasv_address=${options.host}`,
      "seccomp_sandbox=NO",
      `secure_chroot_dir=${empty}`,
      "xferlog_enable=NO",
      "dirlist_enable=YES",
      "max_per_ip=0",
      ...options.extra,
      "",
    ].join("\n"),
  );
  return { conf, root, pub, port, passive };
}
