/**
 * Bounded waiting for tests and scripts: polling a condition with a deadline, and a deadline on
 * one promise.
 *
 * @module
 */

/** How long a site may take to come up (master answering and every slave online). */
export const STARTUP_TIMEOUT_MS = 30_000;

// ------------------------------------------------------------------------------ small helpers

/** Resolves after `ms` milliseconds: only ever used as the interval of a bounded poll. */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

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
    await delay(intervalMs);
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Rejects when `promise` has not settled within `ms`; always clears its timer. */
export async function withTimeout<T>(
  promise: Promise<T>,
  options: { ms: number; what: string },
): Promise<T> {
  const { ms, what } = options;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
