/**
 * The one module that owns paths: virtual path normalisation (master and slave) and
 * mapping a virtual path under a slave's root with a symlink-resolved containment check.
 *
 * A virtual path is absolute, uses "/", has no "." or ".." segments, no empty segments,
 * no trailing slash (except "/" itself), no NUL or other control characters.
 */
import { realPath } from "./_fs.ts";

/**
 * Longest virtual path accepted, in UTF-8 bytes (Linux's PATH_MAX). Bytes, not characters: a
 * slave's file system counts bytes, and a path the master accepted must be one it can create.
 */
export const MAX_PATH_LENGTH = 4096;

/** Longest single name accepted, in UTF-8 bytes (NAME_MAX of ext4, XFS, Btrfs). */
export const MAX_NAME_LENGTH = 255;

/** The UTF-8 length of `s` in bytes (a lone surrogate counts 3, as TextEncoder writes U+FFFD). */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 2; // a pair: 2 code units, 4 bytes
        i++;
      } else n += 2;
    } else n += 2;
  }
  return n;
}

/** Raised when a path cannot be accepted; the message names it. */
export class PathError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "PathError";
  }
}

// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/**
 * Resolves `arg` (absolute or relative to `cwd`) to a normalised virtual path.
 * ".." never climbs above "/". Throws PathError on control characters or overlong input.
 */
export function normalize(cwd: string, arg: string): string {
  if (CONTROL.test(arg)) {
    throw new PathError(`Path contains a control character: "${printable(arg)}"`);
  }
  // Characters first (cheap, and a UTF-8 byte is at most one UTF-16 unit): bounds the work below.
  if (arg.length > MAX_PATH_LENGTH) {
    throw new PathError(`Path too long: over ${MAX_PATH_LENGTH} bytes`);
  }
  const joined = arg.startsWith("/") ? arg : `${cwd}/${arg}`;
  const out: string[] = [];
  for (const seg of joined.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      out.pop();
      continue;
    }
    const bytes = utf8Length(seg);
    if (bytes > MAX_NAME_LENGTH) {
      throw new PathError(
        `Name too long: ${bytes} bytes in UTF-8 (limit ${MAX_NAME_LENGTH}): "${seg.slice(0, 40)}…"`,
      );
    }
    out.push(seg);
  }
  const path = "/" + out.join("/");
  const bytes = utf8Length(path);
  if (bytes > MAX_PATH_LENGTH) {
    throw new PathError(`Path too long: ${bytes} bytes in UTF-8 (limit ${MAX_PATH_LENGTH})`);
  }
  return path;
}

/** Whether `path` is already a normalised virtual path. */
export function isNormalized(path: string): boolean {
  try {
    return path.startsWith("/") && normalize("/", path) === path;
  } catch {
    return false;
  }
}

/** The parent of a normalised path ("/" for "/" and for top-level names). */
export function parentOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

/** The last segment of a normalised path ("" for "/"). */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** Joins a normalised directory path and a single name. */
export function joinPath(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

/**
 * Names starting with this are the server's own: a slave's uploads and copies still arriving
 * (`slave/storage.ts`) and its files set aside after a collision. Slaves never inventory them
 * (and sweep unfinished ones at start), so a client may not create such a name: a file it
 * uploaded under one would vanish at the next remerge after its 226.
 */
export const RESERVED_PREFIX = ".drftpd-";

/** Whether `name` (a base name) lies in the server's own name space, {@link RESERVED_PREFIX}. */
export function isReservedName(name: string): boolean {
  return name.startsWith(RESERVED_PREFIX);
}

/**
 * Names starting with this are a slave's copies of files set aside after a collision (another
 * size than the other holders'): never inventoried, so never listed or served.
 */
export const COLLISION_PREFIX = ".drftpd-collision.";

/**
 * Where a slave sets its colliding copy of `path` aside: in the same folder, named after the
 * time `at` (ms) and the file (the name cut to MAX_NAME_LENGTH characters).
 */
export function collisionPath(path: string, at: number): string {
  const name = `${COLLISION_PREFIX}${Math.trunc(at)}.${baseName(path)}`;
  return joinPath(parentOf(path), name.slice(0, MAX_NAME_LENGTH));
}

/** Whether `name` is a copy set aside after a collision (see {@link collisionPath}). */
export function isCollisionName(name: string): boolean {
  return name.startsWith(COLLISION_PREFIX);
}

/** Whether `path` is `dir` or lies below it (both normalised). */
export function isWithin(path: string, dir: string): boolean {
  return dir === "/" || path === dir || path.startsWith(dir + "/");
}

/**
 * Maps a virtual path to a real path under `root` (an absolute, symlink-free folder) and checks,
 * resolving symlinks of every existing ancestor, that the result cannot leave the root.
 * Throws PathError when the path is not normalised or escapes the root.
 */
export async function containedRealPath(root: string, vpath: string): Promise<string> {
  if (!isNormalized(vpath)) {
    throw new PathError(`Not a normalised virtual path: "${printable(vpath)}"`);
  }
  const real = vpath === "/" ? root : root + vpath;
  // Resolve the deepest existing ancestor (or the path itself) and require it inside root.
  let probe = real;
  for (;;) {
    const resolved = await realPath(probe);
    if (resolved !== null) {
      if (resolved !== root && !resolved.startsWith(root + "/")) {
        throw new PathError(`Path leaves the storage root: "${vpath}"`);
      }
      // If the full path exists and is itself a symlink to a file inside root, it is allowed.
      return real;
    }
    if (probe === root) return real;
    // Security: a dangling symlink does not resolve, but creating the path would follow it,
    // possibly out of the root.
    if (await isSymlink(probe)) {
      throw new PathError(`Path goes through a dangling symlink: "${printable(vpath)}"`);
    }
    probe = probe.slice(0, probe.lastIndexOf("/")) || "/";
  }
}

async function isSymlink(path: string): Promise<boolean> {
  try {
    return (await Deno.lstat(path)).isSymlink;
  } catch {
    return false;
  }
}

/** A path with control characters made visible, for messages. */
export function printable(s: string): string {
  // deno-lint-ignore no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)
    .slice(0, 200);
}
