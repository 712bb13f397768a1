/**
 * The master: FTP for clients, the slave link for slaves, the filelist in Deno KV.
 */
import { getLogger } from "@logtape/logtape";
import type { MasterConfig } from "../shared/config_types.ts";
import { UserStore } from "./auth/users.ts";
import { KvFilelist } from "./filelist/kv_filelist.ts";
import { serveFtp } from "./ftp/server.ts";
import { serveSlaveLinks } from "./slaves/link_server.ts";
import { SlaveRegistry } from "./slaves/registry.ts";

const log = getLogger(["drftpd", "master"]);

/** Runs the master until `signal` aborts. `kv` is the filelist database, owned by the caller. */
export async function runMaster(
  config: MasterConfig,
  kv: Deno.Kv,
  signal: AbortSignal,
): Promise<void> {
  const filelist = new KvFilelist(kv);
  const users = new UserStore(kv);
  const slaves = new SlaveRegistry(kv);
  if (config.slaves.secret === "change-me") {
    log.warn(
      'The slave link secret is the default "change-me": set [slaves] secret in master.toml',
    );
  }
  const ftpListener = Deno.listen({
    hostname: config.ftp.listen.host,
    port: config.ftp.listen.port,
  });
  using _ftp = { [Symbol.dispose]: () => closeQuietly(ftpListener) };
  const linkListener = Deno.listen({
    hostname: config.slaves.listen.host,
    port: config.slaves.listen.port,
  });
  using _link = { [Symbol.dispose]: () => closeQuietly(linkListener) };
  log.info("FTP listening on {host}:{port}", {
    host: config.ftp.listen.host,
    port: (ftpListener.addr as Deno.NetAddr).port,
  });
  log.info("Slave link listening on {host}:{port}", {
    host: config.slaves.listen.host,
    port: (linkListener.addr as Deno.NetAddr).port,
  });
  await Promise.all([
    serveFtp(ftpListener, { config, filelist, users, slaves, signal }),
    serveSlaveLinks(linkListener, {
      secret: config.slaves.secret,
      registry: slaves,
      filelist,
      signal,
    }),
  ]);
  log.info("Master stopped");
}

function closeQuietly(l: Deno.Listener): void {
  try {
    l.close();
  } catch {
    // already closed
  }
}
