/**
 * Storage operations under the slave's root. Every virtual path from the master goes through
 * `containedRealPath`, so neither a crafted path nor a symlink inside the root can reach a file
 * outside it.
 *
 * @module
 */
import { statfs } from "node:fs/promises";
import { setImmediate } from "node:timers";
import { crc32 } from "node:zlib";
import { getLogger } from "@logtape/logtape";
import type { InventoryEntry } from "../shared/protocol.ts";
import {
  baseName,
  containedRealPath,
  isCollisionName,
  isNormalized,
  joinPath,
  parentOf,
  printable,
} from "../shared/paths.ts";
import { SlaveError, toSlaveError } from "./_errors.ts";

const encoder = new TextEncoder();

/** Size of the read buffer for checksums (256 KiB measured fastest). */
export const IO_BUFFER_SIZE = 256 * 1024;

/** Free and total bytes of a file system. */
export interface DiskSpace {
  free: number;
  total: number;
}

/** The file-system side of the slave: contained paths, delete, rename, rmdir, checksum. */
export class Storage {
  #root: string;

  /** `root` must be an absolute, symlink-free, existing folder (use `Deno.realPath`). */
  constructor(root: string) {
    this.#root = root;
  }

  /** The storage root (absolute, symlink-free). */
  get root(): string {
    return this.#root;
  }

  /**
   * The real path of `vpath` under the root, after the symlink-resolved containment check.
   * Throws SlaveError "bad_request" (not normalised) or "outside_root".
   */
  async resolve(vpath: string): Promise<string> {
    if (!isNormalized(vpath)) {
      throw new SlaveError("bad_request", `Not a normalised virtual path: "${printable(vpath)}"`);
    }
    try {
      return await containedRealPath(this.#root, vpath);
    } catch (e) {
      throw toSlaveError(e, "io", vpath);
    }
  }

  /** Like `resolve`, but refuses the root itself (nothing may delete or rename it). */
  async #resolveBelowRoot(vpath: string): Promise<string> {
    if (vpath === "/") throw new SlaveError("bad_request", "The storage root cannot be changed");
    return await this.resolve(vpath);
  }

  /** Creates the parent folders of `vpath` (mkdir -p) and returns the real path of `vpath`. */
  async prepareUpload(vpath: string): Promise<string> {
    const real = await this.#resolveBelowRoot(vpath);
    try {
      await Deno.mkdir(dirName(real), { recursive: true });
    } catch (e) {
      throw toSlaveError(e, "io", vpath);
    }
    // The parents exist now: check again with every ancestor resolved.
    return await this.resolve(vpath);
  }

  /** Deletes a file and prunes the parent folders it leaves empty. "not_found" if missing. */
  async deleteFile(vpath: string): Promise<void> {
    const real = await this.#resolveBelowRoot(vpath);
    try {
      const info = await Deno.lstat(real);
      if (info.isDirectory) throw new SlaveError("not_a_file", `Not a file: "${vpath}"`);
      await Deno.remove(real);
    } catch (e) {
      throw toSlaveError(e, "io", vpath);
    }
    await this.#pruneEmptyParents(real);
  }

  /**
   * Renames a file or folder, creating the target's parents. "not_found" when `from` is missing,
   * "exists" when `to` exists. Parents of `from` left empty are pruned.
   */
  async rename(from: string, to: string): Promise<void> {
    const realFrom = await this.#resolveBelowRoot(from);
    const realTo = await this.#resolveBelowRoot(to);
    if (to.startsWith(from + "/")) {
      throw new SlaveError("bad_request", `Cannot move "${from}" into itself`);
    }
    try {
      await Deno.lstat(realFrom);
    } catch (e) {
      throw toSlaveError(e, "io", from);
    }
    if (await exists(realTo)) throw new SlaveError("exists", `Already exists: "${to}"`);
    const realToChecked = await this.prepareUpload(to);
    try {
      await Deno.rename(realFrom, realToChecked);
    } catch (e) {
      throw toSlaveError(e, "io", from);
    }
    await this.#pruneEmptyParents(realFrom);
  }

  /** Removes a folder and everything in it; a missing folder is fine. Empty parents are pruned. */
  async rmdir(vpath: string): Promise<void> {
    const real = await this.#resolveBelowRoot(vpath);
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(real);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw toSlaveError(e, "io", vpath);
    }
    if (!info.isDirectory && !info.isSymlink) {
      throw new SlaveError("bad_request", `Not a directory: "${vpath}"`);
    }
    try {
      // A symlink is removed itself, never followed.
      await Deno.remove(real, { recursive: info.isDirectory });
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw toSlaveError(e, "io", vpath);
    }
    await this.#pruneEmptyParents(real);
  }

  /**
   * Removes what uploads and copies cut short by a crash left: files under a temporary name
   * ({@link isArriving}) last written before `before` (ms; the process's start, so no transfer
   * of this process is touched). Symlinks are not followed. Returns how many were removed.
   */
  async sweepUnfinished(before: number): Promise<number> {
    let removed = 0;
    const pending = [this.#root];
    for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
      try {
        for await (const entry of Deno.readDir(dir)) {
          const real = `${dir}/${entry.name}`;
          if (entry.isDirectory) pending.push(real);
          else if (entry.isFile && isArriving(entry.name)) {
            if (((await Deno.lstat(real)).mtime?.getTime() ?? 0) >= before) continue;
            await Deno.remove(real);
            removed++;
          }
        }
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) {
          getLogger(["drftpd", "slave"]).warn("Cannot sweep {path}: {error}", {
            path: dir,
            error: String(e),
          });
        }
      }
    }
    return removed;
  }

  /** Sets the modification time (ms) of a file or folder; "not_found" when it is missing. */
  async setMtime(vpath: string, mtime: number): Promise<void> {
    const real = await this.resolve(vpath); // symlinks resolved and contained: utime follows them
    try {
      const info = await Deno.stat(real);
      await Deno.utime(real, info.atime ?? new Date(mtime), new Date(mtime));
    } catch (e) {
      throw toSlaveError(e, "io", vpath);
    }
  }

  /** Reads a whole file and returns its CRC32 and size. Stops with "aborted" when `signal` aborts. */
  async checksum(vpath: string, signal?: AbortSignal): Promise<{ crc32: number; size: number }> {
    const real = await this.resolve(vpath);
    try {
      using file = (await openRegularFile(real, vpath)).file;
      const buf = new Uint8Array(IO_BUFFER_SIZE);
      let crc = 0;
      let size = 0;
      for (;;) {
        if (signal?.aborted) throw new SlaveError("aborted", `Checksum aborted: "${vpath}"`);
        const n = await file.read(buf);
        if (n === null) break;
        crc = crc32(buf.subarray(0, n), crc);
        size += n;
      }
      return { crc32: crc, size };
    } catch (e) {
      throw toSlaveError(e, "io", vpath);
    }
  }

  /** Removes the now-empty folders above `real`, stopping below the root or at the first non-empty one. */
  async #pruneEmptyParents(real: string): Promise<void> {
    let dir = dirName(real);
    while (dir.startsWith(this.#root + "/")) {
      try {
        await Deno.remove(dir);
      } catch {
        return; // not empty, gone, or not ours to remove
      }
      dir = dirName(dir);
    }
  }
}

/**
 * Opens `real` for reading and checks it is a regular file ("not_a_file" otherwise, "not_found"
 * when missing); returns it with its size and mtime (ms). The caller owns the returned file.
 * Internal to the slave folder.
 */
export async function openRegularFile(
  real: string,
  vpath: string,
): Promise<{ file: Deno.FsFile; size: number; mtime: number }> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(real, { read: true });
  } catch (e) {
    throw toSlaveError(e, "io", vpath);
  }
  try {
    // fstat(2) of an open file reads the inode the open just loaded: on a local file system it
    // does not wait on the disk, so it runs in place (one trip through Deno's thread pool fewer).
    const info = file.statSync();
    if (!info.isFile) throw new SlaveError("not_a_file", `Not a file: "${vpath}"`);
    return { file, size: info.size, mtime: info.mtime?.getTime() ?? 0 };
  } catch (e) {
    file.close();
    throw toSlaveError(e, "io", vpath);
  }
}

/** Free (available to us) and total bytes of the file system holding `root`, via statfs(2). */
export async function diskSpace(root: string): Promise<DiskSpace> {
  const s = await statfs(root);
  return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
}

/** Entries (and folders) `scanTree` handles between two turns of the event loop. */
const SCAN_YIELD_EVERY = 1000;

/**
 * How much older than `since` a directory's mtime/ctime may be and still count as changed:
 * file-system timestamps come from a coarse clock (a few ms behind `Date.now()`), Deno reports
 * ctime in whole seconds, and a little skew is forgiven.
 */
export const SINCE_SLACK_MS = 2_000;

/** Resolves on the next turn of the event loop, after pending timers and I/O. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** What `scanTree` yields: a file, or a directory it listed completely (after its files). */
export type ScanItem =
  | { kind: "file"; entry: InventoryEntry }
  | { kind: "dir"; path: string; subdirs: string[] };

/** Options of `scanTree`. */
export interface ScanOptions {
  /**
   * 0 (default): list every directory. Otherwise (ms, slave clock): list only the directories
   * whose mtime or ctime is at least `since - SINCE_SLACK_MS`; the others are still walked into
   * (to find changed directories deeper down), but their files are not even stat'ed.
   */
  since?: number;
  /** Subtrees to scan (normalised virtual paths); default the whole root. */
  paths?: readonly string[];
  /** Counters, filled in as the scan runs. */
  stats?: ScanStats;
}

/** What a scan did. */
export interface ScanStats {
  /** Directories visited (lstat'ed). */
  visited: number;
  /** Directories read (readdir). */
  read: number;
  /** Directories listed (files reported). */
  listed: number;
}

/**
 * Walks the tree under `root` (or under `options.paths`) and yields every regular file of every
 * listed directory as an inventory entry with a virtual path ("/a/b.bin"), followed by the
 * directory itself with the names of its subdirectories. A directory's item always comes
 * before anything of its subdirectories. Symlinks are skipped with a warning, other non-regular
 * files silently. Walks iteratively: memory grows with the number of pending folders and the
 * size of the largest folder, never with the file count.
 *
 * With `since`, a directory that did not change (mtime and ctime older than since - slack) is
 * not listed: its files are neither stat'ed nor yielded. It is still read to find its
 * subdirectories, unless its link count says it has none (`nlink` = 2 + subdirectories on
 * ext4, xfs, tmpfs, …; trusted per device only after a directory read on that device
 * confirmed it): then it costs one lstat.
 *
 * The file system is read synchronously (one async `lstat` per file cost ~5x the CPU), and the
 * walk gives the event loop a turn every `SCAN_YIELD_EVERY` entries, so heartbeats and requests
 * keep flowing during a big scan.
 */
export async function* scanTree(
  root: string,
  options: ScanOptions = {},
): AsyncGenerator<ScanItem> {
  const log = getLogger(["drftpd", "slave"]);
  const since = options.since ?? 0;
  const threshold = since > 0 ? since - SINCE_SLACK_MS : -Infinity;
  const stats = options.stats ?? { visited: 0, read: 0, listed: 0 };
  /** Devices on which a directory's link count was seen to be 2 + its subdirectories. */
  const nlinkTrusted = new Set<number>();
  /** Devices on which it was seen not to be: never skip a read there. */
  const nlinkWrong = new Set<number>();
  const pending: string[] = [];
  for (const p of [...(options.paths ?? ["/"])].reverse()) {
    if (!isNormalized(p)) {
      log.warn("Not scanning {path}: not a valid virtual path", { path: printable(p) });
    } else if (p === "/" || symlinkFree(root, p)) pending.push(p);
  }
  let work = 0;
  for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
    if (++work >= SCAN_YIELD_EVERY) {
      work = 0;
      await nextTurn();
    }
    const realDir = dir === "/" ? root : root + dir;
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(realDir);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        log.warn("Cannot read folder {path}: {error}", { path: dir, error: String(e) });
      }
      continue;
    }
    if (!info.isDirectory) continue; // a symlink or file given in `paths`, or replaced meanwhile
    stats.visited++;
    const changed = since <= 0 || changedSince(info, threshold);
    const dev = info.dev;
    if (!changed && info.nlink === 2 && nlinkTrusted.has(dev) && !nlinkWrong.has(dev)) continue;
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(realDir)];
    } catch (e) {
      log.warn("Cannot read folder {path}: {error}", { path: dir, error: String(e) });
      continue;
    }
    stats.read++;
    work += entries.length >> 4; // names only: far cheaper than a file's lstat
    let realSubdirs = 0;
    const subdirs: string[] = [];
    const files: string[] = [];
    for (const entry of entries) {
      if (entry.isDirectory) realSubdirs++;
      const vpath = joinPath(dir, entry.name);
      if (entry.isSymlink) {
        if (changed) log.warn("Skipping symlink {path} in the storage root", { path: vpath });
        continue;
      }
      if (!isNormalized(vpath)) {
        if (changed) {
          log.warn("Skipping {path}: not a valid virtual path", { path: printable(vpath) });
        }
        continue;
      }
      if (entry.isDirectory) subdirs.push(entry.name);
      else if (
        entry.isFile && changed && !isArriving(entry.name) && !isCollisionName(entry.name)
      ) files.push(vpath);
    }
    // Link count 1 means "not counted" (btrfs, huge ext4 folders): neither proof nor disproof.
    if (info.nlink !== 1) {
      if (info.nlink === 2 + realSubdirs) {
        if (realSubdirs > 0) nlinkTrusted.add(dev);
      } else nlinkWrong.add(dev);
    }
    for (let i = subdirs.length - 1; i >= 0; i--) pending.push(joinPath(dir, subdirs[i]!));
    if (!changed) continue;
    stats.listed++;
    for (const vpath of files) {
      if (++work >= SCAN_YIELD_EVERY) {
        work = 0;
        await nextTurn();
      }
      let file: Deno.FileInfo;
      try {
        file = Deno.lstatSync(root + vpath);
      } catch {
        continue; // vanished while we looked
      }
      if (!file.isFile) continue;
      yield {
        kind: "file",
        entry: { path: vpath, size: file.size, mtime: file.mtime?.getTime() ?? 0 },
      };
    }
    yield { kind: "dir", path: dir, subdirs };
  }
}

/** Names starting with this are copies from another slave still arriving (never inventoried). */
export const COPY_TEMP_PREFIX = ".drftpd-copy.";

/**
 * Names starting with this are uploads (STOR) still arriving: never inventoried, renamed into
 * place when the transfer ends, removed when the link to the master is lost, and swept at start
 * when a crash left them (see {@link Storage.sweepUnfinished}).
 */
export const UPLOAD_TEMP_PREFIX = ".drftpd-upload.";

/** Whether `name` is a copy still arriving (see `copyTempPath`). */
export function isCopyTemp(name: string): boolean {
  return name.startsWith(COPY_TEMP_PREFIX);
}

/** Whether `name` is a file still arriving, an upload or a copy: never taken for a file. */
export function isArriving(name: string): boolean {
  return name.startsWith(UPLOAD_TEMP_PREFIX) || isCopyTemp(name);
}

/**
 * The temporary virtual path a copy of `vpath` arrives under: in the same folder (so the final
 * rename stays on one file system), named after the transfer `xfer` (letters, digits, "-").
 */
export function copyTempPath(vpath: string, xfer: string): string {
  return tempPath(COPY_TEMP_PREFIX, vpath, xfer);
}

/** The temporary virtual path an upload of `vpath` arrives under (like {@link copyTempPath}). */
export function uploadTempPath(vpath: string, xfer: string): string {
  return tempPath(UPLOAD_TEMP_PREFIX, vpath, xfer);
}

/** `prefix` + `xfer` + "." + the base name, cut to 255 UTF-8 bytes at a character boundary. */
function tempPath(prefix: string, vpath: string, xfer: string): string {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(xfer)) {
    throw new SlaveError(
      "bad_request",
      `Invalid transfer id for a temporary name: "${printable(xfer)}"`,
    );
  }
  let name = `${prefix}${xfer}.`;
  let bytes = name.length;
  for (const ch of baseName(vpath)) {
    bytes += encoder.encode(ch).length;
    if (bytes > 255) break;
    name += ch;
  }
  return joinPath(parentOf(vpath), name);
}

/** Whether `root + vpath` exists and no part of it below `root` is a symlink. */
function symlinkFree(root: string, vpath: string): boolean {
  try {
    return Deno.realPathSync(root + vpath) === root + vpath;
  } catch {
    return false; // missing: nothing to scan
  }
}

/** Whether a directory's mtime or ctime is at least `threshold` (or unknown). */
function changedSince(info: Deno.FileInfo, threshold: number): boolean {
  const m = info.mtime?.getTime();
  const c = info.ctime?.getTime();
  if (m === undefined && c === undefined) return true;
  return Math.max(m ?? -Infinity, c ?? -Infinity) >= threshold;
}

/** Every regular file under `root`, as `scanTree` finds them (a full scan, files only). */
export async function* scanInventory(root: string): AsyncGenerator<InventoryEntry> {
  for await (const item of scanTree(root)) if (item.kind === "file") yield item.entry;
}

/** Whether something (even a dangling symlink) exists at `real`. */
async function exists(real: string): Promise<boolean> {
  try {
    await Deno.lstat(real);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw toSlaveError(e);
  }
}

function dirName(real: string): string {
  return real.slice(0, real.lastIndexOf("/")) || "/";
}
