/**
 * The master: FTP (and implicit FTPS) for clients, the slave link for slaves, the filelist in
 * Deno KV.
 */
import { getLogger } from "@logtape/logtape";
import type { MasterConfig } from "../shared/config_types.ts";
import { formatHostPort } from "../shared/config.ts";
import type { OpenSsl } from "../shared/tls/mod.ts";
import { lockFolder } from "../shared/lock.ts";
import { connectionBudget, type FdLimit } from "../shared/rlimit.ts";
import { AccountGuard, LoginGuard } from "./auth/login_guard.ts";
import { UserStore } from "./auth/users.ts";
import { PathPolicy } from "./auth/path_rules.ts";
import { SessionRegistry } from "./ftp/session_registry.ts";
import { KvFilelist } from "./filelist/kv_filelist.ts";
import { serveFtp } from "./ftp/server.ts";
import { PathLocks } from "./path_locks.ts";
import type { MasterServices } from "./ftp/session.ts";
import { serveSlaveLinks } from "./slaves/link_server.ts";
import { SlaveRegistry } from "./slaves/registry.ts";
import { replicationSettings, Replicator } from "./slaves/replication.ts";
import { reloadMasterConfig } from "./config_reload.ts";
import { loadMasterTls } from "./tls_material.ts";
import { SiteMetrics } from "./metrics.ts";
import { XferLog } from "./xferlog.ts";
import { serveHttp, type SiteView } from "./http/server.ts";
import { closeQuietly, listenError } from "../shared/net.ts";

const log = getLogger(["drftpd", "master"]);

/** Optional parts the caller may provide. */
export interface MasterOptions {
  /** The OpenSSL TLS engine (lets slaves resume TLS sessions negotiated with the master). */
  tlsEngine?: OpenSsl;
  /** Called once every listener is up, with the parts a caller may watch. */
  started?: (master: StartedMaster) => void;
  /** The process's open-file limits (`raiseFdLimit()`, read while FFI was still allowed). */
  fdLimit?: FdLimit;
}

/** What {@link MasterOptions.started} receives. */
export interface StartedMaster {
  slaves: SlaveRegistry;
  /** The certificate clients and slaves see (PEM), or null when TLS is off. */
  cert: string | null;
}

/**
 * Runs the master until `stop` aborts, then stops gracefully: no new connections, idle sessions
 * closed, running transfers given up to `[ftp] stop_grace` seconds to finish, then everything
 * closed. `kv` is the filelist database, owned by the caller.
 */
export async function runMaster(
  config: MasterConfig,
  kv: Deno.Kv,
  stop: AbortSignal,
  options: MasterOptions = {},
): Promise<void> {
  const hard = new AbortController();
  const signal = hard.signal;
  // Security: one master per data folder (its read cache assumes it is the only writer).
  using _lock = await lockFolder(config.master.data_dir, "Master data folder");
  let loaded = config; // as read from the file (reloads compare against it)
  config = withinFdLimit(config, options.fdLimit);
  const filelist = new KvFilelist(kv);
  const users = new UserStore(kv);
  const slaves = new SlaveRegistry(kv, config.selection);
  if (config.slaves.secret === "change-me") {
    log.warn(
      'The slave link secret is the default "change-me": set [slaves] secret in master.toml',
    );
  }
  const needTls = config.ftp.tls !== "off" || config.slaves.tls ||
    config.ftp.implicit_tls_listen !== null;
  const tls = needTls ? await loadMasterTls(config, options.tlsEngine) : null;
  const accountGuard = new AccountGuard({
    lockAfter: config.ftp.account_lock_after,
    lockMs: config.ftp.account_lock_seconds * 1000,
    maxDelayMs: config.ftp.account_max_delay_seconds * 1000,
    kv,
  });
  const loginGuard = new LoginGuard({
    banAfter: config.ftp.ban_after_failures,
    banMs: config.ftp.ban_seconds * 1000,
  });
  const metrics = new SiteMetrics();
  const replication = new Replicator(
    { filelist, registry: slaves, tls: config.slaves.tls },
    replicationSettings(config),
    { signal, work: slaves.work },
  );
  slaves.onSlaveOffline((name) => replication.slaveOffline(name));
  slaves.onSlaveOnline((s) =>
    replication.slaveOnline(s.name).catch((e) =>
      log.warn("Checking the copies of {slave}'s files failed: {error}", {
        slave: s.name,
        error: String(e),
      })
    )
  );
  const services: MasterServices = {
    config,
    filelist,
    users,
    loginGuard,
    accountGuard,
    slaves,
    sessions: new SessionRegistry(),
    paths: new PathPolicy(config.permissions),
    locks: new PathLocks(),
    tls: config.ftp.tls === "off" ? null : tls,
    signal,
    stopping: stop,
    metrics,
    replication,
  };
  // One reload at a time: a SIGHUP during a SITE RELOAD waits for it.
  let reloading = Promise.resolve();
  services.reload = () => {
    const run = reloading.then(async () => {
      try {
        const done = await reloadMasterConfig(services, loaded);
        loaded = done.loaded;
        log.info("Reloaded {file}: {applied}{restart}", {
          file: config.file,
          applied: done.applied.length ? `applied ${done.applied.join(", ")}` : "nothing to apply",
          restart: done.restart.length
            ? `; changed, applied at the next restart: ${done.restart.join(", ")}`
            : "",
        });
        return { applied: done.applied, restart: done.restart };
      } catch (e) {
        log.error("Reload of {file} failed, the running config stays: {error}", {
          file: config.file,
          error: e instanceof Error ? e.message : String(e),
        });
        throw e;
      }
    });
    reloading = run.then(() => {}, () => {});
    return run;
  };
  const onHangUp = () => services.reload?.().catch(() => {}); // logged by reload
  if (config.file !== null && Deno.build.os !== "windows") {
    Deno.addSignalListener("SIGHUP", onHangUp);
  }
  using _hangUp = {
    [Symbol.dispose]: () => {
      if (config.file !== null && Deno.build.os !== "windows") {
        Deno.removeSignalListener("SIGHUP", onHangUp);
      }
    },
  };
  const onStop = () => {
    const running = metrics.active().length;
    log.info(
      "Stopping: no new connections{wait}",
      {
        wait: running === 0
          ? ""
          : `; waiting up to ${config.ftp.stop_grace} s for ${running} running transfer(s)`,
      },
    );
    whenIdle(metrics, config.ftp.stop_grace * 1000).then((left) => {
      if (left > 0) log.warn("Stop grace over: closing {n} running transfer(s)", { n: left });
      hard.abort();
    });
  };
  if (stop.aborted) hard.abort();
  else stop.addEventListener("abort", onStop, { once: true });

  const listeners: Deno.Listener[] = [];
  using _close = {
    [Symbol.dispose]: () => {
      for (const l of listeners) closeQuietly(l);
    },
  };
  const listen = (what: string, hp: { host: string; port: number }, secure = false) => {
    const l = listenNamed(what, hp, secure ? tls : null);
    listeners.push(l);
    log.info("{what} listening on {host}:{port}", {
      what,
      host: hp.host,
      port: (l.addr as Deno.NetAddr).port,
    });
    return l;
  };
  const ftp = listen("FTP", config.ftp.listen);
  // Plain TCP: the link server runs TLS itself, under the handshake deadline.
  const link = listen(config.slaves.tls ? "Slave link (TLS)" : "Slave link", config.slaves.listen);
  const implicit = config.ftp.implicit_tls_listen && services.tls
    ? listenNamed("Implicit FTPS", config.ftp.implicit_tls_listen, null)
    : null;
  if (implicit) {
    listeners.push(implicit);
    log.info("Implicit FTPS listening on {host}:{port}", {
      host: config.ftp.implicit_tls_listen!.host,
      port: (implicit.addr as Deno.NetAddr).port,
    });
  }
  await using _xferlog = config.log.xferlog === null
    ? null
    : await XferLog.open(config.log.xferlog || `${config.master.data_dir}/xferlog`, metrics);
  let ftpUp = true;
  const http = config.http.listen
    ? serveHttp(config.http.listen, siteView(services, filelist, () => ftpUp), signal)
    : Promise.resolve();
  options.started?.({ slaves, cert: tls?.cert ?? null });
  await Promise.all([
    serveFtp(ftp, services).finally(() => (ftpUp = false)),
    http,
    implicit ? serveFtp(implicit, services, { implicitTls: true }) : Promise.resolve(),
    serveSlaveLinks(link, {
      secret: config.slaves.secret,
      registry: slaves,
      filelist,
      signal,
      ticketSecret: tls?.ticketSecret ?? null,
      tls: config.slaves.tls && tls
        ? { cert: tls.cert, key: tls.key, ...(tls.engine ? { engine: tls.engine } : {}) }
        : null,
      handshakeMs: config.slaves.handshake_timeout * 1000,
      partialRemerge: config.slaves.partial_remerge,
      silence: {
        unresponsiveMs: config.slaves.unresponsive_after * 1000,
        dropMs: config.slaves.drop_after * 1000,
      },
    }),
  ]);
  stop.removeEventListener("abort", onStop);
  log.info("Master stopped");
}

/**
 * Resolves once no transfer runs (0) or after `ms` (with the number still running).
 */
function whenIdle(metrics: SiteMetrics, ms: number): Promise<number> {
  return new Promise((resolve) => {
    const check = () => {
      const n = metrics.active().length;
      if (n > 0) return;
      done(0);
    };
    const done = (n: number) => {
      clearTimeout(timer);
      unsubscribe();
      resolve(n);
    };
    const timer = setTimeout(() => done(metrics.active().length), ms);
    const unsubscribe = metrics.onFinished(() => queueMicrotask(check));
    check();
  });
}

/** What the HTTP side reads, from the master's parts. */
function siteView(
  services: MasterServices,
  filelist: KvFilelist,
  ftpListening: () => boolean,
): SiteView {
  let counted = { at: -Infinity, n: 0 };
  return {
    metrics: services.metrics,
    slaves: () => services.slaves.status(),
    checkFilelist: () => filelist.checkReadable(),
    ftpListening,
    async filelistEntries() {
      // Counting walks the whole filelist: at most every 30 s.
      if (performance.now() - counted.at > 30_000) {
        counted = { at: performance.now(), n: await filelist.countEntries() };
      }
      return counted.n;
    },
    async pendingOps() {
      const out: Record<string, number> = {};
      for (const name of await services.slaves.known()) {
        out[name] = (await services.slaves.queue.list(name)).length;
      }
      return out;
    },
    longWork: () => services.slaves.work.list(),
    replication: () =>
      services.replication?.stats() ?? { queued: 0, running: 0, copied: 0, failed: 0 },
    async verifyAdmin(user, password) {
      const u = await services.users.verify(user, password);
      return u !== null && u.admin;
    },
  };
}

/** Opens a listener; a failure names what and where ("FTP on 0.0.0.0:21: address in use"). */
function listenNamed(
  what: string,
  hp: { host: string; port: number },
  tls: { cert: string; key: string } | null,
): Deno.Listener {
  try {
    return tls
      ? Deno.listenTls({ hostname: hp.host, port: hp.port, cert: tls.cert, key: tls.key })
      : Deno.listen({ hostname: hp.host, port: hp.port });
  } catch (e) {
    throw listenError(what, formatHostPort(hp), e, " (is another drftpd or FTP server running?)");
  }
}

/**
 * `config` with `max_connections` lowered to what the open-file limit affords, said in the log;
 * unchanged when the limit is unknown or large enough.
 */
function withinFdLimit(config: MasterConfig, fdLimit: FdLimit | undefined): MasterConfig {
  if (!fdLimit) {
    log.warn("Open-file limit unknown (no FFI): max_connections = {n} is not checked against it", {
      n: config.ftp.max_connections,
    });
    return config;
  }
  const budget = connectionBudget(fdLimit.soft);
  log.info("Open-file limit {soft} (hard {hard}, was {before})", { ...fdLimit });
  if (config.ftp.max_connections <= budget) return config;
  log.warn(
    "max_connections lowered from {n} to {budget}: the open-file limit is {soft} (raise the hard limit, e.g. LimitNOFILE= or ulimit -Hn)",
    { n: config.ftp.max_connections, budget, soft: fdLimit.soft },
  );
  return { ...config, ftp: { ...config.ftp, max_connections: budget } };
}
