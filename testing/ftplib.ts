/**
 * Python ftplib as a test client: the opening every ftplib script of the tests shares.
 *
 * @module
 */

/**
 * The start of a Python script run as `python3 script.py '<json>'`: `cfg` is that JSON (`host`,
 * `port`, `user`, `pass`, `tls`), and `ftp` is logged in — `FTP_TLS` with `PROT P` when
 * `cfg["tls"]` (trusting every certificate: the slaves' data certificates are self-signed, each
 * its own) — and trusts the address of a 227 reply, so it connects to the slave it names.
 */
export const FTPLIB_LOGIN = `
import ftplib, json, ssl, sys

cfg = json.loads(sys.argv[1])
if cfg["tls"]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ftp = ftplib.FTP_TLS(context=ctx, timeout=30)
else:
    ftp = ftplib.FTP(timeout=30)
ftp.connect(cfg["host"], cfg["port"])
ftp.login(cfg["user"], cfg["pass"])
if cfg["tls"]:
    ftp.prot_p()
ftp.trust_server_pasv_ipv4_address = True
`;

/** The `cfg` fields {@link FTPLIB_LOGIN} reads, for `site` (any `extra` fields are the script's). */
export function ftplibConfig<T extends Record<string, unknown>>(
  site: { host: string; ftpPort: number; user: string; pass: string },
  tls: boolean,
  extra: T,
): { host: string; port: number; user: string; pass: string; tls: boolean } & T {
  return { host: site.host, port: site.ftpPort, user: site.user, pass: site.pass, tls, ...extra };
}
