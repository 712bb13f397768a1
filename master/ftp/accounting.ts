/**
 * Per-user bookkeeping around a file transfer: the checks made before its 150 (simultaneous
 * uploads/downloads, download credits) and, at its end, the bytes and files added to the user's
 * statistics and credits. A failed or aborted transfer counts only the bytes it moved.
 */
import { getLogger } from "@logtape/logtape";
import { FtpError } from "./errors.ts";
import type { Session } from "./session.ts";
import { FILE_UNAVAILABLE, FILE_UNAVAILABLE_BUSY } from "./replies.ts";

const log = getLogger(["drftpd", "master", "transfer"]);

/** A transfer that passed the checks; `finish` records it exactly once. */
export interface AccountedTransfer {
  /** The slave reported `bytes` moved so far. */
  progress(bytes: number): void;
  /**
   * Frees the transfer's place at once (before the promise is returned), then records `bytes`
   * moved (null: as last reported by the slave's progress) and whether it was the whole file in
   * the user's statistics and credits. Never rejects: a failed write is logged.
   */
  finish(bytes: number | null, complete: boolean): Promise<void>;
}

/**
 * Checks that `s`'s user may start a `kind` transfer of `bytes` (what a download will send)
 * now, and marks the session as running it. Throws FtpError before any byte moves: 450 over the
 * user's simultaneous-transfer limit, 550 "Not enough credits" for a download larger than the
 * credits left (ratio 0 = unlimited).
 */
export async function beginTransfer(
  s: Session,
  kind: "upload" | "download",
  path: string,
  xfer: string,
  bytes: number,
): Promise<AccountedTransfer> {
  // The stored record, not the one read at login: credits given or limits changed since count.
  const u = await s.services.users.get(s.user!.name) ?? s.user!;
  const max = kind === "upload" ? u.maxUploads : u.maxDownloads;
  if (max > 0 && s.services.sessions.transfersOf(u.name, kind) >= max) {
    throw new FtpError(
      FILE_UNAVAILABLE_BUSY,
      `Too many simultaneous ${kind}s for ${u.name} (max ${max})`,
    );
  }
  if (kind === "download" && u.ratio > 0 && bytes > u.credits) {
    throw new FtpError(
      FILE_UNAVAILABLE,
      `Not enough credits: ${path} needs ${bytes} bytes, ${u.name} has ${u.credits}`,
    );
  }
  s.runningKind = kind;
  s.running = { path, xfer, started: Date.now() };
  let finished = false;
  let reported = 0;
  return {
    progress(bytes) {
      reported = Math.max(reported, bytes);
    },
    async finish(bytes, complete) {
      if (finished) return;
      finished = true;
      const moved = bytes ?? reported;
      s.runningKind = null;
      s.running = null;
      try {
        // The session's copy of the user follows (credits decide the next download).
        const fresh = await s.services.users.recordTransfer(
          u.name,
          kind === "upload" ? "up" : "down",
          moved,
          complete,
        );
        if (fresh && s.user?.name === u.name) {
          s.user = { ...s.user, credits: fresh.credits, stats: fresh.stats };
        }
      } catch (e) {
        log.error("Could not record the transfer of {path} for {user}: {error}", {
          path,
          user: u.name,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    },
  };
}
