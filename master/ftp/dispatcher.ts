/**
 * The one dispatcher: every control line goes through the same checks in a fixed order
 * (verb known → argument rule → login → path normalised → permission), then its handler.
 * A thrown error becomes a reply; a handler never kills the session.
 */
import { getLogger } from "@logtape/logtape";
import { permits } from "../auth/permissions.ts";
import { splitWord } from "./codecs.ts";
import { type Command, lookup } from "./commands.ts";
import { FtpError, replyFor } from "./errors.ts";
import type { Session } from "./session.ts";

const log = getLogger(["drftpd", "master", "ftp"]);

/** Splits a control line into upper-cased verb and argument (the rest after one space). */
export function splitCommand(line: string): { verb: string; arg: string } {
  const sp = line.indexOf(" ");
  if (sp < 0) return { verb: line.toUpperCase(), arg: "" };
  return { verb: line.slice(0, sp).toUpperCase(), arg: line.slice(sp + 1) };
}

/** Handles one control line. */
export async function dispatch(s: Session, line: string): Promise<void> {
  const { verb, arg } = splitCommand(line);
  if (s.services.config.log.level === "debug") {
    log.debug("{who} > {line}", { who: s.who, line: verb === "PASS" ? "PASS ****" : line });
  }
  if (verb === "") return;
  const cmd = lookup(verb);
  if (!cmd) {
    if (s.transfer && verb !== "") await s.transfer.done.catch(() => {});
    await s.reply(500, `Unknown command "${verb.slice(0, 32)}"`);
    return;
  }
  // A command that may not run during a transfer waits for it (commands stay in order).
  if (s.transfer && !cmd.duringTransfer) await s.transfer.done.catch(() => {});
  let path: string | null;
  try {
    path = check(s, verb, cmd, arg);
  } catch (e) {
    await sendError(s, verb, e);
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
        await sendError(s, verb, e);
      } finally {
        s.transfer = null;
      }
    })();
    s.transfer = { done, abort: () => abort() };
    return;
  }
  try {
    await cmd.run(s, arg, path, { onAbort: () => {} });
  } catch (e) {
    await sendError(s, verb, e);
  }
}

/** Runs the generic checks; returns the normalised path argument (null when it takes none). */
function check(s: Session, verb: string, cmd: Command, arg: string): string | null {
  if (cmd.arg === "required" && arg.trim() === "") {
    throw new FtpError(501, `${verb} needs an argument`);
  }
  if (cmd.arg === "none" && arg.trim() !== "") {
    throw new FtpError(501, `${verb} takes no argument`);
  }
  if (cmd.login && !s.user) throw new FtpError(530, "Please log in with USER and PASS first");
  let pathArg = arg;
  if (cmd.path === "after-word") {
    pathArg = splitWord(arg).rest;
    if (pathArg.trim() === "") {
      throw new FtpError(501, `${verb} needs a path after "${splitWord(arg).word.slice(0, 64)}"`);
    }
  }
  const path = cmd.path ? s.resolve(pathArg) : null; // throws PathError → 553
  if (cmd.action && s.user && !permits(s.user, cmd.action, path ?? s.cwd)) {
    throw new FtpError(550, `Permission denied: ${verb} ${path ?? s.cwd}`);
  }
  return path;
}

async function sendError(s: Session, verb: string, e: unknown): Promise<void> {
  const r = replyFor(e);
  if (r.unexpected) {
    log.error("{who}: {verb} failed: {error}", {
      who: s.who,
      verb,
      error: e instanceof Error ? e.stack ?? e.message : String(e),
    });
  }
  await s.reply(r.code, r.text);
}
