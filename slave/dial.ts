/**
 * Dialing the master: the TCP connection and, with `tls` (the default), the TLS handshake and
 * the check of the master's certificate. The slave does not verify that certificate against a
 * CA: it compares its SHA-256 fingerprint with `master_fingerprint` and hangs up before sending
 * anything when they differ; without a pin it accepts the certificate and logs its fingerprint
 * (trust on first use). The shared-secret handshake still runs inside (`session.ts`).
 *
 * @module
 */
import { isIP } from "node:net";
import { getLogger } from "@logtape/logtape";
import type { SlaveConfig } from "../shared/config_types.ts";
import { PEER_TIMEOUT_MS } from "../shared/protocol.ts";
import { connectTlsClient, type TlsByteConn } from "../shared/tls/mod.ts";
import { errorText } from "./_errors.ts";

/** An open connection to the master. */
export interface MasterConn {
  /** The plain TCP connection (owned by `secure` when there is TLS). */
  tcp: Deno.TcpConn;
  /** The TLS connection over `tcp`, when the link uses TLS. */
  secure: TlsByteConn | null;
  /** "host:port" of the master, for logs. */
  address: string;
  /** Our address on the link (announced for passive data connections unless configured). */
  localHost: string;
}

/**
 * Connects to the master named in `config` (and runs TLS when configured). Resolves null, with
 * everything closed and logged, when the master cannot be reached, the TLS handshake fails or
 * the certificate is not the pinned one.
 */
export async function dialMaster(
  config: SlaveConfig,
  signal: AbortSignal,
): Promise<MasterConn | null> {
  const log = getLogger(["drftpd", "slave"]);
  const { host, port } = config.slave.master;
  const address = formatAddress(host, port);
  let tcp: Deno.TcpConn;
  try {
    tcp = await Deno.connect({
      hostname: host,
      port,
      transport: "tcp",
      signal: AbortSignal.any([signal, AbortSignal.timeout(PEER_TIMEOUT_MS)]),
    });
  } catch (e) {
    if (!signal.aborted) {
      log.warn(`Cannot connect to master ${address}: {error}`, { error: errorText(e) });
    }
    return null;
  }
  try {
    tcp.setNoDelay(true); // small frames (replies, pings) must not wait for Nagle
  } catch {
    // not supported here; only latency suffers
  }
  const localHost = tcp.localAddr.hostname;
  let secure: TlsByteConn | null = null;
  if (config.slave.tls) {
    secure = await secureLink(config, tcp, address, signal);
    if (secure === null) return null;
  }
  return { tcp, secure, address, localHost };
}

/**
 * Runs the TLS handshake on the link and checks the master's certificate against the pin.
 * Resolves the TLS connection, or null (everything closed and logged) when the handshake fails
 * or the certificate is not the pinned one: then nothing at all was sent to that peer.
 */
async function secureLink(
  config: SlaveConfig,
  conn: Deno.TcpConn,
  address: string,
  signal: AbortSignal,
): Promise<TlsByteConn | null> {
  const log = getLogger(["drftpd", "slave"]);
  const host = config.slave.master.host;
  let secure: TlsByteConn;
  try {
    // No CA check: the master's certificate is usually self-signed; the pin decides below.
    secure = await connectTlsClient(conn, {
      insecure: true,
      handshakeTimeoutMs: PEER_TIMEOUT_MS,
      signal,
      ...(isIP(host) === 0 ? { servername: host } : {}),
    });
  } catch (e) {
    if (!signal.aborted) {
      log.warn(
        `TLS handshake with master ${address} failed (is [slaves] tls on at the master?): {error}`,
        { error: errorText(e), master: address },
      );
    }
    return null;
  }
  const seen = secure.info.peerFingerprint;
  const pin = config.slave.master_fingerprint;
  if (pin !== "") {
    const expected = normalizeFingerprint(pin);
    if (seen !== expected) {
      log.error(
        `Master ${address} presented certificate {seen}, but master_fingerprint pins {expected}; ` +
          "not connecting",
        { seen: seen ?? "(none)", expected, master: address },
      );
      secure.abort();
      return null;
    }
    log.debug("Master certificate {fingerprint} matches the pin", { fingerprint: seen });
  } else {
    if (seen === undefined) {
      log.error(`Master ${address} presented no certificate; not connecting`, { master: address });
      secure.abort();
      return null;
    }
    log.info(
      `Accepted master certificate {fingerprint} of ${address}; pin it with master_fingerprint`,
      { fingerprint: seen, master: address },
    );
  }
  return secure;
}

/** `"sha256:<lowercase hex>"` from a pin written with or without the prefix, colons or case. */
export function normalizeFingerprint(pin: string): string {
  const hex = pin.trim().toLowerCase().replace(/^sha256:/, "").replaceAll(":", "");
  return `sha256:${hex}`;
}

/** "host:port", bracketing IPv6 literals. */
function formatAddress(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
