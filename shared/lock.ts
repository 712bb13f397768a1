/**
 * Exclusive use of a folder between processes: an advisory lock (`flock`) on the folder itself,
 * so nothing is written into it. The master locks its data folder, a slave its root: a second
 * process on the same folder stops with a clear error instead of corrupting the first one's state.
 * The kernel drops the lock when the process ends, however it ends.
 */
import { deadline, TimeoutError } from "./timers.ts";

/** A folder that another process holds locked. */
export class FolderInUseError extends Error {
  /** Creates the error naming the folder and its role. */
  constructor(what: string, path: string) {
    super(`${what} "${path}" is in use by another process (it holds a lock on the folder)`);
    this.name = "FolderInUseError";
  }
}

/**
 * Locks folder `path` (which must exist) for this process; `what` names it in the error.
 * Waits up to `waitMs` for another holder to let go, then throws {@link FolderInUseError}.
 * Dispose the result to unlock. Deno has no non-blocking lock: after a timeout the pending
 * request stays until the other process lets go, so a caller should stop (main.ts exits).
 */
export async function lockFolder(
  path: string,
  what: string,
  waitMs = 1000,
): Promise<Disposable> {
  const dir = await Deno.open(path, { read: true });
  try {
    await deadline(dir.lock(true), { ms: waitMs, what: `the lock on ${path}` });
  } catch (e) {
    dir.close();
    throw e instanceof TimeoutError ? new FolderInUseError(what, path) : e;
  }
  return {
    [Symbol.dispose]() {
      dir.close(); // closing the descriptor drops the lock
    },
  };
}
