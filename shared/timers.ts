/**
 * Timers shared by master, slave, tests and the bench: an abortable sleep and a deadline on a
 * promise, both built on `AbortSignal` (`AbortSignal.timeout` timers do not keep the process
 * alive, and nothing is left to clear when the promise settles first).
 *
 * @module
 */

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** A {@link deadline} passed before its promise settled. */
export class TimeoutError extends Error {
  override name = "TimeoutError";
}

/**
 * Settles like `promise`, or rejects with a {@link TimeoutError} naming `what` once `ms` have
 * passed. The promise itself is not cancelled: a caller that owns the resource behind it (a
 * socket read) closes that resource on timeout.
 */
export function deadline<T>(
  promise: Promise<T>,
  options: { ms: number; what: string },
): Promise<T> {
  const { ms, what } = options;
  const signal = AbortSignal.timeout(ms);
  return new Promise<T>((resolve, reject) => {
    const onTimeout = () => reject(new TimeoutError(`Timed out after ${ms} ms: ${what}`));
    signal.addEventListener("abort", onTimeout, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onTimeout));
  });
}
