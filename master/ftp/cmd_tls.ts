/**
 * FTPS commands (RFC 4217 and the secure-FXP extensions): AUTH, PBSZ, PROT, CCC, SSCN, CPSV.
 */
import { getLogger } from "@logtape/logtape";
import { pasv } from "./cmd_data.ts";
import { FtpError } from "./errors.ts";
import type { Session } from "./session.ts";
import {
  AUTH_OK,
  BAD_SEQUENCE,
  DENIED_BY_POLICY,
  NOT_IMPLEMENTED,
  NOT_IMPLEMENTED_FOR_PARAM,
  OK,
  PROT_LEVEL_NOT_SUPPORTED,
  SYNTAX_ERROR_ARGS,
} from "./replies.ts";

const log = getLogger(["drftpd", "master", "ftp"]);

/** AUTH TLS | SSL | TLS-C | TLS-P */
export async function auth(s: Session, arg: string): Promise<void> {
  const mech = arg.trim().toUpperCase();
  if (!s.services.tls) throw new FtpError(NOT_IMPLEMENTED, "TLS is turned off on this server");
  if (!["TLS", "TLS-C", "SSL", "TLS-P"].includes(mech)) {
    throw new FtpError(
      NOT_IMPLEMENTED_FOR_PARAM,
      `Unknown AUTH mechanism "${mech.slice(0, 16)}"; use AUTH TLS`,
    );
  }
  if (s.secure) throw new FtpError(BAD_SEQUENCE, "The control connection is already protected");
  if (s.transfer) await s.transfer.done.catch(() => {});
  s.clearData();
  s.pret = null;
  await s.reply(AUTH_OK, `AUTH ${mech} OK; starting TLS`);
  try {
    const conn = await s.startTls();
    log.debug("{ip}: control TLS {protocol}", { ip: s.remoteHost, protocol: conn.info.protocol });
  } catch (e) {
    log.info("TLS handshake with {ip} failed: {error}", {
      ip: s.remoteHost,
      error: e instanceof Error ? e.message : String(e),
    });
    s.quitting = true;
    s.close();
    return;
  }
  // "SSL"/"TLS-P" historically imply protected data (RFC 4217 §4: AUTH SSL clients expect it).
  if (mech === "SSL" || mech === "TLS-P") {
    s.pbsz = true;
    s.prot = "P";
  }
}

/** PBSZ 0 */
export async function pbsz(s: Session, arg: string): Promise<void> {
  if (!s.secure) throw new FtpError(BAD_SEQUENCE, "PBSZ needs AUTH TLS first");
  s.pbsz = true;
  const size = arg.trim();
  await s.reply(
    OK,
    size === "0" ? "PBSZ=0" : `PBSZ=0 (${size.slice(0, 16)} is not used with TLS)`,
  );
}

/** PROT C | P */
export async function prot(s: Session, arg: string): Promise<void> {
  const level = arg.trim().toUpperCase();
  if (level === "C") {
    if (s.services.config.ftp.tls === "required") {
      throw new FtpError(
        DENIED_BY_POLICY,
        "PROT C refused: this server requires protected data connections",
      );
    }
    s.prot = "C";
    await s.reply(OK, "PROT C: data connections in the clear");
    return;
  }
  if (level === "P") {
    if (!s.secure) throw new FtpError(BAD_SEQUENCE, "PROT P needs AUTH TLS first");
    s.pbsz = true; // many clients skip PBSZ; its only value with TLS is 0
    s.prot = "P";
    await s.reply(OK, "PROT P: data connections are protected");
    return;
  }
  if (level === "S" || level === "E") {
    throw new FtpError(PROT_LEVEL_NOT_SUPPORTED, `PROT ${level} is not supported`);
  }
  throw new FtpError(
    NOT_IMPLEMENTED_FOR_PARAM,
    `Unknown protection level "${level.slice(0, 8)}"; use C or P`,
  );
}

/** CCC: refused (the control connection stays protected). */
export function ccc(_s: Session): Promise<void> {
  throw new FtpError(DENIED_BY_POLICY, "CCC refused: the control connection stays protected");
}

/** SSCN [ON|OFF]: be the TLS client (ON) or server (OFF) on data connections, for secure FXP. */
export async function sscn(s: Session, arg: string): Promise<void> {
  const v = arg.trim().toUpperCase();
  if (!s.secure) {
    throw new FtpError(BAD_SEQUENCE, "SSCN needs a protected control connection (AUTH TLS)");
  }
  if (v === "ON") s.sscn = s.fxpAsked = true;
  else if (v === "OFF") s.sscn = false;
  else if (v !== "") {
    throw new FtpError(SYNTAX_ERROR_ARGS, `SSCN takes ON or OFF, not "${v.slice(0, 8)}"`);
  }
  await s.reply(OK, s.sscn ? "SSCN:CLIENT METHOD" : "SSCN:SERVER METHOD");
}

/** CPSV: PASV whose data connection we open as TLS client (secure FXP). */
export async function cpsv(s: Session): Promise<void> {
  if (!s.secure) {
    throw new FtpError(BAD_SEQUENCE, "CPSV needs a protected control connection (AUTH TLS)");
  }
  s.fxpAsked = true;
  await pasv(s);
  s.cpsv = true;
}
