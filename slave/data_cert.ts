/**
 * The slave's certificate for TLS data connections: configured files, or a self-signed one it
 * creates and keeps next to its root.
 *
 * @module
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import type { SlaveConfig } from "../shared/config_types.ts";
import { certFingerprint, type CertPair, ensureSelfSignedCert } from "../shared/tls/mod.ts";
import { errorText } from "./_errors.ts";

/**
 * The certificate for TLS data connections: `tls_cert`/`tls_key` when set, else a self-signed one
 * kept in `<root>.tls/` (next to the root, never inside it: it would join the inventory).
 */
export async function loadDataCert(config: SlaveConfig): Promise<CertPair> {
  const { tls_cert: certPath, tls_key: keyPath, root, name } = config.slave;
  if (certPath === "" && keyPath === "") {
    const dir = `${root.replace(/\/+$/, "")}.tls`;
    try {
      return await ensureSelfSignedCert(dir, name);
    } catch (e) {
      throw new Error(`Cannot load or create the TLS certificate in "${dir}": ${errorText(e)}`, {
        cause: e,
      });
    }
  }
  if (certPath === "" || keyPath === "") {
    throw new Error("Set both tls_cert and tls_key in the slave configuration, or neither");
  }
  const cert = await readPemFile(certPath, "certificate");
  const key = await readPemFile(keyPath, "private key");
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (e) {
    throw new Error(`Invalid TLS certificate "${certPath}": ${errorText(e)}`, { cause: e });
  }
  let matches: boolean;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(key));
  } catch (e) {
    throw new Error(`Invalid TLS private key "${keyPath}": ${errorText(e)}`, { cause: e });
  }
  if (!matches) {
    throw new Error(`TLS private key "${keyPath}" does not match certificate "${certPath}"`);
  }
  return { cert, key, fingerprint: certFingerprint(cert) };
}

async function readPemFile(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`Cannot read the TLS ${what} "${path}": ${errorText(e)}`, { cause: e });
  }
}
