/**
 * Domain errors → FTP replies, in one place.
 */
import { PathError } from "../../shared/paths.ts";
import { FilelistError } from "../filelist/types.ts";
import { SlaveGoneError, SlaveReplyError } from "../slaves/slave_handle.ts";
import { UnsupportedFamilyError } from "./codecs.ts";
import { NoPortError } from "./data_channel.ts";

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

/** A reply for any error a handler can throw; `unexpected` is true when it should be logged as a bug. */
export function replyFor(e: unknown): { code: number; text: string; unexpected: boolean } {
  if (e instanceof FtpError) return { code: e.code, text: e.message, unexpected: false };
  if (e instanceof PathError) return { code: 553, text: e.message, unexpected: false };
  if (e instanceof FilelistError) {
    return { code: 550, text: e.message, unexpected: false };
  }
  if (e instanceof SlaveGoneError) return { code: 450, text: e.message, unexpected: false };
  if (e instanceof SlaveReplyError) {
    switch (e.code) {
      case "not_found":
      case "not_a_file":
      case "exists":
        return { code: 550, text: e.message, unexpected: false };
      case "outside_root":
        return { code: 553, text: e.message, unexpected: false };
      case "aborted":
        return { code: 426, text: e.message, unexpected: false };
      case "data_connection":
      case "no_port":
      case "timeout":
        return { code: 425, text: e.message, unexpected: false };
      default:
        return { code: 451, text: e.message, unexpected: false };
    }
  }
  if (e instanceof UnsupportedFamilyError) {
    return { code: 522, text: `${e.message}; use (1,2)`, unexpected: false };
  }
  if (e instanceof NoPortError) return { code: 425, text: e.message, unexpected: false };
  if (e instanceof RangeError || e instanceof TypeError) {
    return { code: 501, text: e.message, unexpected: false };
  }
  const text = e instanceof Error ? e.message : String(e);
  return { code: 451, text: `Local error: ${text}`, unexpected: true };
}
