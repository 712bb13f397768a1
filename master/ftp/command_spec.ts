/**
 * What one row of the command table declares, and how its path argument becomes the real target
 * path. Handlers import their types from here, never from `commands.ts` (which imports the
 * handlers), so the table and its handlers form no import cycle.
 */
import type { Action } from "../auth/permissions.ts";
import { parseListArgs } from "./listing.ts";
import { splitWord } from "./codecs.ts";
import type { Session } from "./session.ts";

/** Lets a data command register what ABOR should do. */
export interface TransferControl {
  onAbort(fn: () => void): void;
}

/**
 * How a row's argument names its target path; the dispatcher normalises it against the cwd
 * (an empty path is the cwd) and checks the row's action on it:
 * - `"path"`: the whole argument is the path (`CWD <dir>`, `RETR <file>`, `MLSD [dir]`).
 * - `"after-word"`: the path follows a first word (`MFMT <time> <path>`).
 * - `"listing"`: leading `ls` options are dropped first (`LIST -la <path>`, `STAT -l <path>`).
 */
export type PathMode = "path" | "after-word" | "listing";

/** What PRET announces for a data row: the kind of transfer it will be. */
export type PretKind = "download" | "upload" | "list";

/** One row of the command table. */
export interface Command {
  help: string;
  /**
   * A login is needed first; `"with-argument"`: only when an argument is given (`STAT` alone is
   * the session status, allowed before login; `STAT <path>` is a listing).
   */
  login: boolean | "with-argument";
  arg: "none" | "required" | "optional";
  /** The argument names a path (see {@link PathMode}); the handler gets it normalised. */
  path?: PathMode;
  /** Permission the user needs on the target path (or the cwd when the row takes no path). */
  action?: Action;
  /** Runs in the background as a transfer (ABOR may interrupt it). */
  opensData?: boolean;
  /** What `PRET <verb>` announces for this row; rows without it are refused by PRET (504). */
  pret?: PretKind;
  /** May run while a transfer is in progress. */
  duringTransfer?: boolean;
  /**
   * The target is a name this command may create (STOR, APPE, MKD, RNTO): a base name in the
   * server's own name space (`shared/paths.ts#RESERVED_PREFIX`) is refused with 553.
   */
  creates?: boolean;
  /**
   * Once it succeeds, its target (or the new cwd) is what the client looked at last: a PASV
   * without PRET picks its slave from it (`Session#hint`).
   */
  hint?: boolean;
  /** Line this command adds to FEAT (without the leading space). */
  feat?: string;
  run(s: Session, arg: string, path: string | null, ctrl: TransferControl): Promise<void>;
}

/**
 * The path text inside `arg` for a row with path mode `mode` (not yet normalised), or null when
 * the argument lacks one (`"after-word"` with nothing after the word).
 */
export function pathText(mode: PathMode, arg: string): string | null {
  switch (mode) {
    case "path":
      return arg;
    case "listing":
      return parseListArgs(arg).path;
    case "after-word": {
      const rest = splitWord(arg).rest;
      return rest.trim() === "" ? null : rest;
    }
  }
}
