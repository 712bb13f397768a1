/**
 * Small helpers shared by the bench and the network lab: statistics, formatting, machine facts,
 * and a registry of every child process the bench starts so that all of them die with it.
 *
 * @module
 */
import { deadline } from "../shared/timers.ts";

/** Median of some numbers (NaN for none). */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** The p-th percentile (0-100) by linear interpolation between closest ranks (NaN for none). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

/** "1.23" with `digits` decimals, or "n/a" for NaN/Infinity. */
export function fmt(value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}

/** Bytes per second as MiB/s text. */
export function mibps(bytesPerSecond: number): string {
  return `${fmt(bytesPerSecond / 1048576, 1)} MiB/s`;
}

/** Facts about the machine for the results header. */
export async function machineInfo(): Promise<{ cores: number; kernel: string; deno: string }> {
  let kernel = "unknown";
  try {
    kernel = (await Deno.readTextFile("/proc/sys/kernel/osrelease")).trim();
  } catch {
    // not Linux
  }
  let model = "";
  try {
    const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
    model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? "";
  } catch {
    // not Linux
  }
  const cores = navigator.hardwareConcurrency;
  return { cores, kernel: model ? `${kernel} (${model})` : kernel, deno: Deno.version.deno };
}

/** VmRSS of a process in bytes, or NaN when it cannot be read. */
export async function rssBytes(pid: number): Promise<number> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const kb = /^VmRSS:\s*(\d+)\s*kB/m.exec(status)?.[1];
    return kb === undefined ? NaN : Number(kb) * 1024;
  } catch {
    return NaN;
  }
}

/**
 * CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`; with `children`, plus
 * those of its children it has reaped (how a forking server such as vsftpd accounts a session).
 * NaN when it cannot be read.
 */
export async function cpuSeconds(pid: number, children = false): Promise<number> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // Fields after "(comm)": state is field 3; utime, stime, cutime, cstime are fields 14-17.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
    const ticks = f[11]! + f[12]! + (children ? f[13]! + f[14]! : 0);
    return ticks / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** USER_HZ: the unit of /proc/<pid>/stat times (100 on every Linux architecture we run on). */
const CLOCK_TICKS = 100;

/** Pids of the live children of `pid` (`/proc/<pid>/task/<pid>/children`); [] when unreadable. */
export async function childPids(pid: number): Promise<number[]> {
  try {
    const text = await Deno.readTextFile(`/proc/${pid}/task/${pid}/children`);
    return text.trim() === "" ? [] : text.trim().split(/\s+/).map(Number);
  } catch {
    return [];
  }
}

/** Pids of processes whose command line contains every one of `needles` (Linux /proc). */
export async function findPids(needles: string[]): Promise<number[]> {
  const out: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmd = (await Deno.readTextFile(`/proc/${entry.name}/cmdline`)).split("\0").join(" ");
      if (needles.every((n) => cmd.includes(n))) out.push(Number(entry.name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

// ------------------------------------------------------------------------------ child processes

const children = new Set<Deno.ChildProcess>();

/** Spawns a child that is killed by {@link killAll} (and on SIGINT/SIGTERM of the bench). */
export function spawnTracked(cmd: string, args: string[], options: Deno.CommandOptions = {}) {
  const child = new Deno.Command(cmd, {
    stdin: "null",
    stdout: "null",
    stderr: "null",
    ...options,
    args,
  }).spawn();
  children.add(child);
  child.status.finally(() => children.delete(child));
  return child;
}

/** SIGKILLs every tracked child still running and waits for them (bounded). */
export async function killAll(): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
    waits.push(child.status.catch(() => {}));
  }
  await deadline(Promise.all(waits), { ms: 10_000, what: "children to exit" }).catch(() => {});
}

/** Stops one tracked child: `signal`, then SIGKILL after `graceMs`; resolves when it exited. */
export async function stopChild(
  child: Deno.ChildProcess,
  signal: Deno.Signal = "SIGTERM",
  graceMs = 5000,
): Promise<void> {
  try {
    child.kill(signal);
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
  }, graceMs);
  await child.status.catch(() => {});
  clearTimeout(timer);
}

/** Runs a command to completion (bounded); returns its output; throws on failure when `check`. */
export async function exec(
  cmd: string,
  args: string[],
  options: { timeoutMs?: number; check?: boolean; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawnTracked(cmd, args, {
    stdout: "piped",
    stderr: "piped",
    ...(options.env ? { env: options.env } : {}),
  });
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
  }, options.timeoutMs ?? 60_000);
  try {
    const out = await child.output();
    const res = {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
    if (options.check && out.code !== 0) {
      throw new Error(`${cmd} ${args.join(" ")} exited ${out.code}: ${res.stderr.trim()}`);
    }
    return res;
  } finally {
    clearTimeout(timer);
  }
}
