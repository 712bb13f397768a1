/**
 * Bounded polling of a condition for tests and scripts (a deadline on one promise is
 * `shared/timers.ts#deadline`).
 *
 * @module
 */
import { sleep } from "../shared/timers.ts";

/** How long a site may take to come up (master answering and every slave online). */
export const STARTUP_TIMEOUT_MS = 30_000;

/** Thrown inside a {@link poll} check to stop polling at once (e.g. a process exited). */
export class PollAbortedError extends Error {
  override name = "PollAbortedError";
}

/**
 * Calls `check` every `intervalMs` until it returns a value other than `undefined`, or throws
 * once `timeoutMs` has passed. `describe` is called for the failure message.
 */
export async function poll<T>(
  check: () => Promise<T | undefined> | T | undefined,
  options: { timeoutMs?: number; intervalMs?: number; describe?: () => string | Promise<string> } =
    {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? STARTUP_TIMEOUT_MS;
  const intervalMs = options.intervalMs ?? 150;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = undefined;
  while (true) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      if (error instanceof PollAbortedError) throw error;
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const what = options.describe ? await options.describe() : "condition";
      const why = lastError === undefined ? "" : `\nlast error: ${errorText(lastError)}`;
      throw new Error(`Timed out after ${timeoutMs} ms waiting for: ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
