/**
 * The one dispatcher: every control line goes through the same checks in a fixed order
 * (verb known 500 → argument rule 501 → login 530 → path normalised 553, and 553 for a name a row
 * creates in the server's own `.drftpd-` space → permission 550 on the real target path), then
 * its handler.
 * A thrown error becomes a reply; a handler never kills the session.
 */
import { getLogger } from "@logtape/logtape";
import { splitWord } from "./codecs.ts";
import { type Command, pathText } from "./command_spec.ts";
import { resolveCommand, type ResolvedCommand } from "./commands.ts";
import { FtpError, replyFor } from "./errors.ts";
import type { Session } from "./session.ts";
import { FILE_UNAVAILABLE, NAME_NOT_ALLOWED, NOT_LOGGED_IN, SYNTAX_ERROR_ARGS } from "./replies.ts";
import { baseName, isReservedName, RESERVED_PREFIX } from "../../shared/paths.ts";

const log = getLogger(["drftpd", "master", "ftp"]);

/** Splits a control line into upper-cased verb and argument (the rest after one space). */
export function splitCommand(line: string): { verb: string; arg: string } {
  const sp = line.indexOf(" ");
  if (sp < 0) return { verb: line.toUpperCase(), arg: "" };
  return { verb: line.slice(0, sp).toUpperCase(), arg: line.slice(sp + 1) };
}

/** Handles one control line. */
export async function dispatch(s: Session, line: string): Promise<void> {
  const { verb, arg: rawArg } = splitCommand(line);
  if (s.services.config.log.level === "debug") {
    log.debug("{who} > {line}", { who: s.who, line: verb === "PASS" ? "PASS ****" : line });
  }
  if (verb === "") return;
  let found: ResolvedCommand;
  try {
    found = resolveCommand(verb, rawArg);
  } catch (e) {
    if (s.transfer) await s.transfer.done.catch(() => {});
    await sendError(s, verb, e, false);
    return;
  }
  const { name, cmd, arg } = found;
  // A command that may not run during a transfer waits for it (commands stay in order).
  if (s.transfer && !cmd.duringTransfer) await s.transfer.done.catch(() => {});
  let path: string | null;
  try {
    path = await check(s, name, cmd, arg);
  } catch (e) {
    await sendError(s, name, e, false);
    return;
  }
  if (cmd.opensData) {
    // Runs in the background so ABOR/STAT/NOOP can be read meanwhile.
    let abort = () => {};
    const ctrl = { onAbort: (fn: () => void) => (abort = fn) };
    const done = (async () => {
      try {
        await cmd.run(s, arg, path, ctrl);
      } catch (e) {
        await sendError(s, name, e, true);
      } finally {
        s.transfer = null;
      }
    })();
    s.transfer = { done, abort: () => abort() };
    return;
  }
  try {
    await cmd.run(s, arg, path, { onAbort: () => {} });
    if (cmd.hint) s.hint = path ?? s.cwd;
  } catch (e) {
    await sendError(s, name, e, false);
  }
}

/**
 * Runs the generic checks in their fixed order (argument 501 → login 530 → path normalised and
 * contained 553, a created name in the server's own space 553 → permission 550 on the real
 * target); returns the normalised target path, or
 * null when the row takes no path (or, for a "with-argument" login row, got no argument).
 */
async function check(s: Session, name: string, cmd: Command, arg: string): Promise<string | null> {
  const empty = arg.trim() === "";
  if (cmd.arg === "required" && empty) {
    throw new FtpError(SYNTAX_ERROR_ARGS, `${name} needs an argument`);
  }
  if (cmd.arg === "none" && !empty) {
    throw new FtpError(SYNTAX_ERROR_ARGS, `${name} takes no argument`);
  }
  if (cmd.login === "with-argument" && empty) return null;
  if (cmd.login && !s.user) {
    throw new FtpError(NOT_LOGGED_IN, "Please log in with USER and PASS first");
  }
  let path: string | null = null;
  if (cmd.path) {
    const text = pathText(cmd.path, arg);
    if (text === null) {
      throw new FtpError(
        SYNTAX_ERROR_ARGS,
        `${name} needs a path after "${splitWord(arg).word.slice(0, 64)}"`,
      );
    }
    path = s.resolve(text); // throws PathError → 553
    const base = baseName(path);
    if (cmd.creates && isReservedName(base)) {
      const shown = base.slice(0, 64);
      throw new FtpError(
        NAME_NOT_ALLOWED,
        `${shown}: names starting with "${RESERVED_PREFIX}" are the server's own; choose another name`,
      );
    }
  }
  if (cmd.action && s.user) {
    const target = path ?? s.cwd;
    if (!await s.may(cmd.action, target)) {
      throw new FtpError(
        FILE_UNAVAILABLE,
        cmd.action === "site_admin"
          ? `${name} is for admins only`
          : `Permission denied: ${name} ${target}`,
      );
    }
  }
  return path;
}

async function sendError(s: Session, verb: string, e: unknown, transfer: boolean): Promise<void> {
  const r = replyFor(e, { transfer });
  if (r.unexpected) {
    log.error("{who}: {verb} failed: {error}", {
      who: s.who,
      verb,
      error: e instanceof Error ? e.stack ?? e.message : String(e),
    });
  }
  await s.reply(r.code, r.text);
}
