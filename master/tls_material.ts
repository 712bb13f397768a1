/**
 * The master's TLS material: its certificate (configured, or self-signed on first start into
 * the data dir and reused), the session-ticket secret shared with slaves, and the TLS engine.
 */
import { getLogger } from "@logtape/logtape";
import { randomBytes } from "node:crypto";
import type { MasterConfig } from "../shared/config_types.ts";
import { certFingerprint, ensureSelfSignedCert, type OpenSsl } from "../shared/tls/mod.ts";

const log = getLogger(["drftpd", "master", "tls"]);

/** What every TLS handshake of the master needs. */
export interface MasterTls {
  cert: string;
  key: string;
  fingerprint: string;
  /** 48 bytes from which session-ticket keys derive; sent to slaves so they can resume sessions. */
  ticketSecret: Uint8Array;
  /** The OpenSSL engine (cross-process resumption), or undefined for node:tls. */
  engine: OpenSsl | undefined;
}

/** Loads or creates the master's certificate. */
export async function loadMasterTls(
  config: MasterConfig,
  engine: OpenSsl | undefined,
): Promise<MasterTls> {
  const { tls_cert, tls_key } = config.ftp;
  let cert: string;
  let key: string;
  if (tls_cert !== "" || tls_key !== "") {
    if (tls_cert === "" || tls_key === "") {
      throw new TypeError(
        "Invalid TLS settings: set both ftp.tls_cert and ftp.tls_key, or neither",
      );
    }
    cert = await readPem(tls_cert, "ftp.tls_cert");
    key = await readPem(tls_key, "ftp.tls_key");
  } else {
    const pair = await ensureSelfSignedCert(`${config.master.data_dir}/tls`, "drftpd");
    cert = pair.cert;
    key = pair.key;
  }
  const fingerprint = certFingerprint(cert);
  log.info("TLS certificate {fingerprint} ({engine})", {
    fingerprint,
    engine: engine ? "OpenSSL engine, sessions resumable on slaves" : "node:tls",
  });
  return { cert, key, fingerprint, ticketSecret: new Uint8Array(randomBytes(48)), engine };
}

async function readPem(path: string, key: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`Cannot read ${key} "${path}": ${e instanceof Error ? e.message : e}`);
  }
}
