/**
 * Domain errors → FTP replies, in one place: handlers throw, the dispatcher calls `replyFor`.
 *
 * A slave that went away (SlaveGoneError) is always 426, whatever the command: the request it
 * was serving is cut off, which is 426's RFC 959 meaning ("connection closed; transfer
 * aborted"), and it is a valid reply after a 150 (450 is not). No slave able to serve at all
 * (NoSlaveError: none online holds the file, or none has room) is 450, and so is a slave that
 * stopped answering (SlaveUnresponsiveError) before a transfer began; after a 150 it is 426.
 */
import { PathError } from "../../shared/paths.ts";
import { FilelistError } from "../filelist/types.ts";
import { CopyRefusedError } from "../slaves/copy.ts";
import { NoSlaveError } from "../slaves/selection.ts";
import { PathBusyError } from "../path_locks.ts";
import { SlaveGoneError, SlaveReplyError, SlaveUnresponsiveError } from "../slaves/slave_handle.ts";
import { UnsupportedFamilyError } from "./codecs.ts";
import { NoPortError } from "./data_channel.ts";
import {
  ACTION_NOT_TAKEN_LOCAL,
  CANT_OPEN_DATA,
  FILE_UNAVAILABLE,
  FILE_UNAVAILABLE_BUSY,
  NAME_NOT_ALLOWED,
  PROTOCOL_NOT_SUPPORTED,
  SYNTAX_ERROR_ARGS,
  TRANSFER_ABORTED,
} from "./replies.ts";

/** An error that already knows its reply. Handlers throw it; the dispatcher sends it. */
export class FtpError extends Error {
  /** The reply code. */
  readonly code: number;
  /** Creates the error with a reply code and text. */
  constructor(code: number, text: string) {
    super(text);
    this.name = "FtpError";
    this.code = code;
  }
}

/** Where an error happened, when its reply depends on it. */
export interface ErrorContext {
  /**
   * A data command (RETR, STOR, LIST…) after its 150: a slave's I/O or data-connection failure
   * then cut the transfer off (426) rather than failing before it (451, 425).
   */
  transfer?: boolean;
}

/**
 * A reply for any error a handler can throw; `unexpected` is true when it should be logged as a
 * bug.
 */
export function replyFor(
  e: unknown,
  ctx: ErrorContext = {},
): { code: number; text: string; unexpected: boolean } {
  if (e instanceof FtpError) return { code: e.code, text: e.message, unexpected: false };
  if (e instanceof PathError) return { code: NAME_NOT_ALLOWED, text: e.message, unexpected: false };
  if (e instanceof FilelistError) {
    return { code: FILE_UNAVAILABLE, text: e.message, unexpected: false };
  }
  if (e instanceof SlaveGoneError) {
    return { code: TRANSFER_ABORTED, text: e.message, unexpected: false };
  }
  if (e instanceof SlaveUnresponsiveError) {
    const code = ctx.transfer ? TRANSFER_ABORTED : FILE_UNAVAILABLE_BUSY;
    return { code, text: e.message, unexpected: false };
  }
  if (e instanceof NoSlaveError) {
    return { code: FILE_UNAVAILABLE_BUSY, text: e.message, unexpected: false };
  }
  if (e instanceof CopyRefusedError) {
    return { code: FILE_UNAVAILABLE_BUSY, text: e.message, unexpected: false };
  }
  if (e instanceof PathBusyError) {
    return { code: FILE_UNAVAILABLE_BUSY, text: e.message, unexpected: false };
  }
  if (e instanceof SlaveReplyError) {
    // A transfer cut off, or bytes that were not the file's (a sibling send): never a 226.
    if (
      ctx.transfer && (e.code === "io" || e.code === "data_connection" || e.code === "mismatch")
    ) {
      return { code: TRANSFER_ABORTED, text: `Transfer failed: ${e.message}`, unexpected: false };
    }
    switch (e.code) {
      case "not_found":
      case "not_a_file":
      case "exists":
        return { code: FILE_UNAVAILABLE, text: e.message, unexpected: false };
      case "outside_root":
        return { code: NAME_NOT_ALLOWED, text: e.message, unexpected: false };
      case "stopping":
        return { code: FILE_UNAVAILABLE_BUSY, text: e.message, unexpected: false };
      case "aborted":
        return { code: TRANSFER_ABORTED, text: e.message, unexpected: false };
      case "data_connection":
      case "no_port":
      case "timeout":
        return { code: CANT_OPEN_DATA, text: e.message, unexpected: false };
      default:
        return { code: ACTION_NOT_TAKEN_LOCAL, text: e.message, unexpected: false };
    }
  }
  if (e instanceof UnsupportedFamilyError) {
    return { code: PROTOCOL_NOT_SUPPORTED, text: `${e.message}; use (1,2)`, unexpected: false };
  }
  if (e instanceof NoPortError) return { code: CANT_OPEN_DATA, text: e.message, unexpected: false };
  if (e instanceof RangeError || e instanceof TypeError) {
    return { code: SYNTAX_ERROR_ARGS, text: e.message, unexpected: false };
  }
  const text = e instanceof Error ? e.message : String(e);
  return { code: ACTION_NOT_TAKEN_LOCAL, text: `Local error: ${text}`, unexpected: true };
}
