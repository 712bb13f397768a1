/**
 * The open-file limit (`RLIMIT_NOFILE`) through libc's `getrlimit`/`setrlimit` (Deno FFI), and
 * what the master can afford under it. Every socket costs a file descriptor: a server that runs
 * out cannot accept, so at start it raises its soft limit as far as the hard limit allows
 * (`raiseFdLimit`, called before the ffi permission is dropped) and sizes `max_connections`
 * below what remains (`connectionBudget`).
 *
 * @module
 */

/** The soft and hard limits, as numbers (`Infinity` for `RLIM_INFINITY`). */
export interface FdLimit {
  soft: number;
  hard: number;
  /** The soft limit before `raiseFdLimit` changed it (equal to `soft` when unchanged). */
  before: number;
}

/** Descriptors kept for everything but sessions: listeners, KV, log files, slave links. */
export const FD_RESERVE = 64;

/** Highest soft limit asked for when the hard limit is unlimited (Linux's default `nr_open`). */
const MAX_ASK = 1_048_576;

const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

function resourceNumber(): number {
  switch (Deno.build.os) {
    case "linux":
      return 7;
    case "darwin":
    case "freebsd":
    case "netbsd":
      return 8;
    default:
      throw new Error(`No RLIMIT_NOFILE for "${Deno.build.os}"`);
  }
}

function libcPath(): string {
  return Deno.build.os === "darwin" ? "libSystem.B.dylib" : "libc.so.6";
}

const toNumber = (v: bigint) => (v === RLIM_INFINITY ? Infinity : Number(v));

/**
 * Raises this process's soft open-file limit to its hard limit (at most 1,048,576) and returns
 * the limits. Needs `--allow-ffi`; throws when libc or the call is unavailable.
 */
export function raiseFdLimit(): FdLimit {
  const lib = Deno.dlopen(libcPath(), {
    getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
    setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  });
  try {
    return raise(lib.symbols);
  } finally {
    lib.close();
  }
}

function raise(libc: {
  getrlimit(resource: number, out: BufferSource): number;
  setrlimit(resource: number, limit: BufferSource): number;
}): FdLimit {
  const resource = resourceNumber();
  const lim = new BigUint64Array(2);
  if (libc.getrlimit(resource, lim) !== 0) throw new Error("getrlimit failed");
  const before = toNumber(lim[0]!);
  const hard = lim[1]!;
  const want = hard === RLIM_INFINITY || hard > BigInt(MAX_ASK) ? BigInt(MAX_ASK) : hard;
  if (lim[0]! < want) {
    const next = new BigUint64Array([want, hard]);
    if (libc.setrlimit(resource, next) === 0) lim[0] = want;
  }
  return { soft: toNumber(lim[0]!), hard: toNumber(hard), before };
}

/**
 * The most control connections an open-file limit of `softLimit` affords: each session may hold
 * its control connection and one data connection, after `FD_RESERVE` for everything else.
 */
export function connectionBudget(softLimit: number): number {
  return Math.max(8, Math.floor((softLimit - FD_RESERVE) / 2));
}
