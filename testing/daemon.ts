/**
 * A long-running `main.ts` subcommand (master, slave, local) as a child process whose output a
 * test waits on: `waitFor` resolves on the chunk that makes the output match, no polling.
 *
 * @module
 */
import { repoRoot } from "./site.ts";

/** A running `deno run -A main.ts …`. */
export interface Daemon extends AsyncDisposable {
  /** stdout and stderr so far, interleaved as they arrived. */
  output(): string;
  /** Resolves with the first match of `pattern` in the output; rejects on exit or after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends `signal` (default SIGTERM) and resolves with the exit status. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
  /** The exit status, once it has exited. */
  readonly status: Promise<Deno.CommandStatus>;
}

/** Starts `main.ts` with `args` in `cwd` (default: the repository). */
export function startDaemon(args: string[], options: { cwd?: string } = {}): Daemon {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${repoRoot}main.ts`, ...args],
    cwd: options.cwd ?? repoRoot,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let text = "";
  const listeners = new Set<() => void>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const d = new TextDecoder();
    for await (const chunk of stream) {
      text += d.decode(chunk, { stream: true });
      for (const l of [...listeners]) l();
    }
  };
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const status = (async () => {
    const s = await child.status;
    await pumped;
    for (const l of [...listeners]) l();
    return s;
  })();
  let exited = false;
  status.then(() => (exited = true));
  let stopping: Promise<Deno.CommandStatus> | null = null;
  const stop = (signal: Deno.Signal = "SIGTERM") => {
    stopping ??= (async () => {
      if (!exited) {
        try {
          child.kill(signal);
        } catch {
          // exited meanwhile
        }
      }
      return await status;
    })();
    return stopping;
  };
  return {
    output: () => text,
    status,
    stop,
    waitFor(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${pattern}:\n${text}`));
        }, timeoutMs);
        const check = () => {
          const m = text.match(pattern);
          if (m || exited) {
            listeners.delete(check);
            clearTimeout(timer);
            if (m) resolve(m);
            else reject(new Error(`Exited before printing ${pattern}:\n${text}`));
          }
        };
        listeners.add(check);
        check();
      });
    },
    async [Symbol.asyncDispose]() {
      await stop("SIGTERM");
    },
  };
}
