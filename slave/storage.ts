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
import { containedRealPath, isNormalized, joinPath, printable } from "../shared/paths.ts";
import { SlaveError, toSlaveError } from "./_errors.ts";

/** Size of the read buffer for checksums and transfers (256 KiB measured fastest). */
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
 * when missing). The caller owns the returned file. Internal to the slave folder.
 */
export async function openRegularFile(
  real: string,
  vpath: string,
): Promise<{ file: Deno.FsFile; size: number }> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(real, { read: true });
  } catch (e) {
    throw toSlaveError(e, "io", vpath);
  }
  try {
    const info = await file.stat();
    if (!info.isFile) throw new SlaveError("not_a_file", `Not a file: "${vpath}"`);
    return { file, size: info.size };
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

/** Entries (and folders) `scanInventory` handles between two turns of the event loop. */
const SCAN_YIELD_EVERY = 1000;

/** Resolves on the next turn of the event loop, after pending timers and I/O. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Every regular file under `root` as an inventory entry with a virtual path ("/a/b.bin").
 * Symlinks are skipped with a warning, other non-regular files silently. Walks iteratively and
 * yields as it goes: memory grows with the number of pending folders and the size of the
 * largest folder, never with the file count.
 *
 * The file system is read synchronously (one async `lstat` per file cost ~5x the CPU), and the
 * walk gives the event loop a turn every `SCAN_YIELD_EVERY` entries, so heartbeats and requests
 * keep flowing during a big scan.
 */
export async function* scanInventory(root: string): AsyncGenerator<InventoryEntry> {
  const log = getLogger(["drftpd", "slave"]);
  const pending: string[] = ["/"];
  let work = 0;
  for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
    if (++work >= SCAN_YIELD_EVERY) {
      work = 0;
      await nextTurn();
    }
    const realDir = dir === "/" ? root : root + dir;
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(realDir)];
    } catch (e) {
      log.warn("Cannot read folder {path}: {error}", { path: dir, error: String(e) });
      continue;
    }
    for (const entry of entries) {
      if (++work >= SCAN_YIELD_EVERY) {
        work = 0;
        await nextTurn();
      }
      const vpath = joinPath(dir, entry.name);
      if (entry.isSymlink) {
        log.warn("Skipping symlink {path} in the storage root", { path: vpath });
        continue;
      }
      if (!isNormalized(vpath)) {
        log.warn("Skipping {path}: not a valid virtual path", { path: printable(vpath) });
        continue;
      }
      if (entry.isDirectory) {
        pending.push(vpath);
        continue;
      }
      if (!entry.isFile) continue;
      let info: Deno.FileInfo;
      try {
        info = Deno.lstatSync(root + vpath);
      } catch {
        continue; // vanished while we looked
      }
      if (!info.isFile) continue;
      yield { path: vpath, size: info.size, mtime: info.mtime?.getTime() ?? 0 };
    }
  }
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
