/**
 * Running client processes (curl, lftp, python3, `deno run main.ts …`) to completion with a
 * timeout, and the curl flags the e2e tests share.
 *
 * @module
 */

import { parse227 } from "./ftp_client.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a finished client process did. */
export interface RunResult {
  code: number;
  success: boolean;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Options for {@link run}. */
export interface RunOptions {
  cwd?: string;
  /** Killed (SIGKILL) after this long. Default 60 s. */
  timeoutMs?: number;
  stdin?: string | Uint8Array;
  env?: Record<string, string>;
}

/** Runs a client process to completion with a timeout; never throws for a non-zero exit. */
export async function run(
  cmd: string,
  args: string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.env === undefined ? {} : { env: options.env }),
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, options.timeoutMs ?? 60_000);
  try {
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      const data = typeof options.stdin === "string"
        ? encoder.encode(options.stdin)
        : options.stdin;
      await writer.write(data).catch(() => {});
      await writer.close().catch(() => {});
    }
    const out = await child.output();
    return {
      code: out.code,
      success: out.success,
      signal: out.signal,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
      timedOut,
    };
  } finally {
    clearTimeout(timer);
  }
}

/** A one-line summary of a failed run, for assertion messages. */
export function describeRun(cmd: string, r: RunResult): string {
  return `${cmd} exited ${r.code}${r.signal ? ` (${r.signal})` : ""}${
    r.timedOut ? " after timing out" : ""
  }\n--- stdout\n${tail(r.stdout, 3000)}\n--- stderr\n${tail(r.stderr, 6000)}`;
}

export function tail(text: string, max: number): string {
  return text.length <= max ? text : `…${text.slice(text.length - max)}`;
}

// ------------------------------------------------------------------------------ curl helpers

/** curl flags every e2e call uses: quiet with errors, bounded time, no proxy from the environment. */
export const CURL_BASE = ["-sS", "--max-time", "60", "--noproxy", "*"];

/** curl flags for passive mode through PRET that honour the slave address in 227. */
export const CURL_PRET = [...CURL_BASE, "--ftp-pret", "--no-ftp-skip-pasv-ip"];

/** Runs curl with the given args (a 90 s guard on top of --max-time). */
export function curl(args: string[], options: RunOptions = {}): Promise<RunResult> {
  return run("curl", args, { timeoutMs: 90_000, ...options });
}

/** Every 227 endpoint in a curl -v trace ("< 227 Entering Passive Mode (…)"). */
export function pasvHostsFromCurlTrace(stderr: string): { host: string; port: number }[] {
  return stderr.split("\n")
    .filter((l) => /^< 227[ -]/.test(l))
    .map((l) => parse227(l.slice(2)));
}
