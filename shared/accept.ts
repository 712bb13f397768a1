/**
 * The one accept loop for every listener of a long-running server (FTP, implicit FTPS, slave
 * link). An accept that fails because descriptors ran out (EMFILE, ENFILE) or for any other
 * transient reason must not end the process: the loop logs it (at most once a minute), backs
 * off (10 ms doubling to 1 s while failures follow each other, so the connections in progress can finish and free descriptors),
 * and goes on. It ends only when the listener is closed or `signal` aborts.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { sleep } from "./timers.ts";

const log = getLogger(["drftpd", "accept"]);

/** Accept failures are logged at most this often per listener. */
const LOG_EVERY_MS = 60_000;

/** Options of {@link acceptLoop}. */
export interface AcceptLoopOptions {
  /** Ends the loop (the caller closes the listener on abort). */
  signal: AbortSignal;
  /** Names the listener in logs ("FTP", "Slave link"). */
  what: string;
  /** First back-off after a failed accept, ms (default 10; doubles up to `maxBackoffMs`). */
  backoffMs?: number;
  /** Longest back-off, ms (default 1000). */
  maxBackoffMs?: number;
}

/** Calls `onConn` for each accepted connection until the listener closes or `signal` aborts. */
export async function acceptLoop<C extends Deno.Conn>(
  listener: Deno.Listener<C>,
  onConn: (conn: C) => void,
  options: AcceptLoopOptions,
): Promise<void> {
  const first = options.backoffMs ?? 10;
  const max = options.maxBackoffMs ?? 1000;
  let failures = 0;
  let backoff = first;
  let loggedAt = -Infinity;
  while (!options.signal.aborted) {
    let conn: C;
    try {
      conn = await listener.accept();
    } catch (e) {
      if (options.signal.aborted || isClosed(e)) return;
      failures++;
      // Once, then at most once a minute while it lasts: a flood must not flood the log too.
      if (performance.now() - loggedAt >= LOG_EVERY_MS) {
        loggedAt = performance.now();
        log.error("Accepting on {what} failed ({n} times so far): {error}; backing off", {
          what: options.what,
          n: failures,
          error: e instanceof Error ? e.message : String(e),
        });
      }
      await sleep(backoff, options.signal);
      backoff = Math.min(max, backoff * 2);
      continue;
    }
    backoff = first;
    onConn(conn);
  }
}

/** The listener was closed (by us): not an error to back off from. */
function isClosed(e: unknown): boolean {
  return e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted;
}
