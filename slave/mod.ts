/**
 * The slave's entry: locks and opens its root, loads its data certificate, and runs link
 * sessions with the master (`session.ts`), dialing again with exponential backoff until told to
 * stop. The pieces: `dial.ts` (connect, TLS, certificate pin), `session.ts` (handshake,
 * heartbeat, dispatch), `requests.ts` (answers to the master's requests), `inventory.ts`
 * (remerge scans), `transfer.ts` (data connections), `storage.ts` (contained file access).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { SlaveConfig } from "../shared/config_types.ts";
import { lockFolder } from "../shared/lock.ts";
import type { OpenSsl } from "../shared/tls/mod.ts";
import { sleep } from "../shared/timers.ts";
import { errorText } from "./_errors.ts";
import { loadDataCert } from "./data_cert.ts";
import {
  DATA_ENGINE_ENV,
  DATA_ENGINES,
  type DataEngine,
  type DataEngineName,
  nativeEngine,
} from "./data_engine.ts";
import { runSession } from "./session.ts";
import { Storage } from "./storage.ts";
import type { DataTlsOptions } from "./transfer.ts";
import { loadZeroCopy } from "./zero_copy.ts";

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;

/** Options of `runSlave`. */
export interface SlaveOptions {
  /**
   * The OpenSSL engine (`loadOpenSsl()`), for TLS data connections: it honours the master's
   * session-ticket keys, so data connections resume the client's control-connection session.
   * Without it node:tls is used (no resumption across processes). The link always uses node:tls.
   */
  tlsEngine?: OpenSsl;
  /** What moves plain data bytes (`chooseDataEngine()`); the native engine when absent. */
  dataEngine?: DataEngine;
}

/**
 * The data engine `config` (or the `DRFTPD_DATA_ENGINE` environment variable, which wins) asks
 * for. Loads libc for "zero_copy", so call it while `--allow-ffi` is granted; when that fails it
 * logs why and returns the native engine. Throws TypeError for an unknown engine in the variable.
 */
export function chooseDataEngine(config: SlaveConfig): DataEngine {
  const log = getLogger(["drftpd", "slave"]);
  const forced = Deno.env.get(DATA_ENGINE_ENV);
  if (forced !== undefined && forced !== "" && !isDataEngineName(forced)) {
    throw new TypeError(
      `Invalid ${DATA_ENGINE_ENV} "${forced}": expected one of ${DATA_ENGINES.join(", ")}`,
    );
  }
  const wanted = forced || config.slave.data_engine;
  if (wanted === "native") return nativeEngine;
  try {
    return loadZeroCopy();
  } catch (e) {
    log.warn("Zero-copy data engine unavailable ({error}); using the native engine", {
      error: errorText(e),
    });
    return nativeEngine;
  }
}

function isDataEngineName(s: string): s is DataEngineName {
  return (DATA_ENGINES as readonly string[]).includes(s);
}

/**
 * Runs the slave described by `config` until `signal` aborts: connects to the master, serves it,
 * and reconnects with backoff (0.5 s doubling to 30 s, jittered; reset after a welcome) whenever
 * the link fails. Rejects only when the storage root cannot be created or the TLS certificate
 * for data connections cannot be loaded (or created).
 */
export async function runSlave(
  config: SlaveConfig,
  signal: AbortSignal,
  options: SlaveOptions = {},
): Promise<void> {
  const log = getLogger(["drftpd", "slave"]);
  await Deno.mkdir(config.slave.root, { recursive: true });
  // A slave needs exclusive write access to its root: a second one on it stops here.
  using _lock = await lockFolder(config.slave.root, "Slave root");
  const storage = new Storage(await Deno.realPath(config.slave.root));
  // Uploads and copies a crash cut short are still under their temporary names: never taken for
  // files, removed here in the background (this process has written none of them yet).
  const sweep = storage.sweepUnfinished(Date.now()).then((n) => {
    if (n > 0) log.warn("Removed {n} unfinished uploads left by an earlier stop", { n });
  });
  const pair = await loadDataCert(config);
  const tls: DataTlsOptions = { cert: pair.cert, key: pair.key };
  if (options.tlsEngine) tls.engine = options.tlsEngine;
  const engine = options.dataEngine ?? nativeEngine;
  log.info("Slave {name} storing files in {root}", {
    name: config.slave.name,
    root: storage.root,
  });
  log.info("TLS data connections use certificate {fingerprint} ({engine})", {
    fingerprint: pair.fingerprint,
    engine: options.tlsEngine ? options.tlsEngine.version : "node:tls",
  });
  log.info("Plain data connections use the {engine} data engine", { engine: engine.name });
  let failures = 0;
  while (!signal.aborted) {
    const welcomed = await runSession(config, storage, { tls, engine }, signal);
    if (signal.aborted) break;
    if (welcomed) failures = 0;
    const delay = backoffDelay(failures++);
    log.info("Reconnecting to master in {seconds} s", { seconds: Math.round(delay / 100) / 10 });
    await sleep(delay, signal);
  }
  await sweep;
  log.info("Slave {name} stopped", { name: config.slave.name });
}

/** The delay before reconnect attempt number `failures` (0-based), jittered ±20 %. */
function backoffDelay(failures: number): number {
  const base = BACKOFF_FIRST_MS * 2 ** Math.min(failures, 16);
  return Math.round(Math.min(BACKOFF_MAX_MS, base * (0.8 + Math.random() * 0.4)));
}
