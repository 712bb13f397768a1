/**
 * The slave's error type: every failed request ends as one `SlaveError`, whose `code` is the
 * protocol's machine-readable reason. Only modules in `slave/` import this file.
 */
import type { ErrorCode } from "../shared/protocol.ts";
import { isNormalized, PathError } from "../shared/paths.ts";

/** What a failed receive left on disk. */
export interface PartialInfo {
  size: number;
  mtime: number;
  bytes: number;
}

/** A request failed for a reason the master should see as an `error` reply with `code`. */
export class SlaveError extends Error {
  /** The protocol error code. */
  readonly code: ErrorCode;
  /** For a failed receive: what is on disk now. */
  partial: PartialInfo | undefined;

  /** Creates the error. */
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SlaveError";
    this.code = code;
    this.partial = undefined;
  }
}

/**
 * Maps any thrown value to a SlaveError: file-system errors by kind (`fallback` for the rest),
 * `PathError` to "outside_root" (or "bad_request" for a path that is not normalised).
 */
export function toSlaveError(e: unknown, fallback: ErrorCode = "io", vpath?: string): SlaveError {
  if (e instanceof SlaveError) return e;
  const what = vpath === undefined ? "" : `: "${vpath}"`;
  if (e instanceof PathError) {
    const code = vpath !== undefined && !isNormalized(vpath) ? "bad_request" : "outside_root";
    return new SlaveError(code, e.message, { cause: e });
  }
  if (e instanceof Deno.errors.NotFound) {
    return new SlaveError("not_found", `No such file or directory${what}`, { cause: e });
  }
  if (e instanceof Deno.errors.AlreadyExists) {
    return new SlaveError("exists", `Already exists${what}`, { cause: e });
  }
  if (e instanceof Deno.errors.IsADirectory) {
    return new SlaveError("not_a_file", `Not a file${what}`, { cause: e });
  }
  if (e instanceof Deno.errors.NotADirectory) {
    return new SlaveError("not_found", `A parent is not a directory${what}`, { cause: e });
  }
  const message = e instanceof Error ? e.message : String(e);
  return new SlaveError(fallback, message, { cause: e });
}

/** The message of a thrown value, for logs. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
