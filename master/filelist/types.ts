/**
 * The filelist contract: what the master knows about every directory and file.
 * `master/filelist/kv_filelist.ts` implements it on Deno KV; the FTP side only sees this interface.
 * All paths are normalised virtual paths ("/", "/a", "/a/b.bin"), see `shared/paths.ts`.
 */

/** A file in the filelist. */
export interface FileEntry {
  kind: "file";
  /** Base name. */
  name: string;
  size: number;
  /** ms since epoch. */
  mtime: number;
  owner: string;
  group: string;
  /** CRC32 of the whole file, or null when unknown (remerged files, resumed uploads). */
  crc32: number | null;
  /** Names of the slaves recorded as holding this file (online or not). */
  slaves: string[];
  /** Duration of the upload that produced it, ms (0 when unknown). */
  xferMs: number;
  /**
   * A resume (APPE, REST+STOR) of it is running, or was cut off by a crash before its final
   * reply: what the slave holds may be short. Absent when complete. Such a file is left out of
   * listings and not served; a finished upload to it, or a resume the client broke off, clears it.
   */
  incomplete?: true;
}

/** A directory in the filelist. */
export interface DirEntry {
  kind: "dir";
  name: string;
  mtime: number;
  owner: string;
  group: string;
}

/** Anything a directory holds. */
export type Entry = FileEntry | DirEntry;

/** Why a filelist operation failed. */
export type FilelistErrorCode = "not_found" | "exists" | "not_empty" | "not_a_dir" | "not_a_file";

/** A filelist operation that could not be done; `code` says why, the message names the path. */
export class FilelistError extends Error {
  /** Machine-readable reason. */
  readonly code: FilelistErrorCode;
  /** Creates the error. */
  constructor(code: FilelistErrorCode, message: string) {
    super(message);
    this.name = "FilelistError";
    this.code = code;
  }
}

/** What an upload records: a file entry without its kind and name (the path gives those). */
export type FileRecord = Omit<FileEntry, "kind" | "name">;

/** Counters a remerge reports when it finishes. */
export interface RemergeStats {
  /** Entries received. */
  seen: number;
  /** Files that did not exist and were created. */
  added: number;
  /** Files this slave was removed from because it no longer has them. */
  removed: number;
  /** Files deleted from the filelist because no slave holds them any more. */
  dropped: number;
  /** Files whose size was adopted from this (only) holder. */
  resized: number;
  /** Files whose size on this slave differs from another holder's (slave not added). */
  conflicts: number;
  /** Partial remerges: directories the slave listed completely, reconciled one by one. */
  listed: number;
  /** Partial remerges: directories removed because they vanished from the slave and nothing is left in them. */
  pruned: number;
}

/** A directory a slave listed completely (see `ListedDir` in shared/protocol.ts). */
export interface ListedDirectory {
  path: string;
  /** Names of its subdirectories (a piece of them when not `complete`). */
  subdirs: readonly string[];
  /** Whether this is the last piece: the directory's files and subdirectories are all known. */
  complete: boolean;
}

/** How a remerge reconciles. */
export interface RemergeOptions {
  /**
   * false (default), a full remerge: the slave reports every file it has, and `finish()` removes
   * it from every file it held and did not report. true, a partial one: the slave reports only
   * the directories it listed (changed ones); `finish()` reconciles exactly those, the holders
   * of every other directory stay as they are.
   */
  partial?: boolean;
  /**
   * Paths a partial remerge must never remove the slave from, although the directory listing
   * says so (targets and sources of renames the slave missed while offline: its disk catches up
   * later). Default: none.
   */
  protect?: (path: string) => boolean;
}

/** An open remerge of one slave: feed batches, then finish. */
export interface Remerge {
  /** Whether this remerge is partial (see RemergeOptions). */
  readonly partial: boolean;
  /**
   * Reconciles one batch of the slave's inventory: its files (added as holder, created, size
   * adopted, or a conflict), and for a partial remerge the directories it listed.
   */
  add(
    entries: readonly { path: string; size: number; mtime: number }[],
    dirs?: readonly ListedDirectory[],
  ): Promise<void>;
  /**
   * Partial remerges: the next at most `max` subtrees the slave must list in full before
   * `finish()`, [] when none are left. They are the subdirectories of listed directories under
   * which the filelist records no file of this slave (new or moved-in directories, whose own
   * subdirectories may look unchanged). Once called, later listings are no longer examined.
   */
  takeRescans(max: number): string[];
  /**
   * The collisions found since the last call: files the slave reported with another size than
   * the one the filelist records for their other holders. The slave is not made (or stays no
   * longer) a holder of them and the entry is unchanged; the caller sets the slave's copy aside.
   */
  takeCollisions(): Collision[];
  /**
   * Full: removes the slave from every file it held before and did not report. Partial: for
   * every listed directory, removes it from the files there it did not report and from every
   * file under subdirectories it no longer has (pruning those left empty). Files left without a
   * holder are deleted. With `scannedAt` (the slave-clock time its scan started), records it
   * as the `since` of the slave's next partial remerge. Returns the counters.
   */
  finish(scannedAt?: number): Promise<RemergeStats>;
}

/** A file a slave holds with another size than its other holders (see `Remerge.takeCollisions`). */
export interface Collision {
  path: string;
  /** The size on the reporting slave. */
  size: number;
  /** The size the filelist records. */
  recorded: number;
  /** The other holders the filelist records. */
  holders: string[];
}

/** What {@link Filelist.heldTotals} counts. */
export interface HeldTotals {
  files: number;
  bytes: number;
  /** False when the count stopped at its limit (there are more). */
  complete: boolean;
}

/** The filelist store. */
export interface Filelist {
  /** The entry at `path`, or null. "/" is always a directory. */
  get(path: string): Promise<Entry | null>;
  /** The entries of directory `path`, sorted by name. Throws not_found / not_a_dir. */
  list(path: string): Promise<Entry[]>;
  /** Creates a directory; its parent must exist. Throws exists / not_found (parent) / not_a_dir. */
  mkdir(path: string, owner: string, group: string): Promise<DirEntry>;
  /** Creates every missing directory of `path` (like mkdir -p), owned by owner/group. */
  mkdirs(path: string, owner: string, group: string): Promise<void>;
  /** Removes an empty directory. Throws not_found / not_a_dir / not_empty. */
  rmdir(path: string): Promise<void>;
  /** Creates or replaces a file entry; the parent directory must exist (not_found otherwise). */
  putFile(path: string, rec: FileRecord): Promise<FileEntry>;
  /**
   * The file at `path` read straight from the store, with the version of its record (for
   * {@link setCrc32}); null when there is no file there.
   */
  getFileVersion(path: string): Promise<{ file: FileEntry; version: string } | null>;
  /**
   * Records a file's CRC32 only if its record is still at `version` (an atomic check on it):
   * returns false, changing nothing, when the file was rewritten, moved or deleted meanwhile.
   */
  setCrc32(path: string, crc32: number, version: string): Promise<boolean>;
  /** Deletes a file entry and returns it. Throws not_found / not_a_file. */
  deleteFile(path: string): Promise<FileEntry>;
  /** Renames a file or a whole directory tree. Throws not_found (source or target parent) / exists. */
  rename(from: string, to: string): Promise<void>;
  /** Sets the modification time (ms) of a file or directory (not "/"). Throws not_found. */
  setMtime(path: string, mtime: number): Promise<Entry>;
  /** Adds `slave` to a file's holders (no-op if already there). */
  addHolder(path: string, slave: string): Promise<void>;
  /** Removes `slave` from a file's holders; deletes the entry when nobody holds it. Returns true if deleted. */
  removeHolder(path: string, slave: string): Promise<boolean>;
  /** Paths of all files recorded as held by `slave` (from the holder index). */
  filesHeldBy(slave: string): AsyncIterable<string>;
  /**
   * How many files `slave` is recorded as holding and their bytes, counted now from the holder
   * index (one read of each held entry; at most `limit` files, `complete` false beyond).
   */
  heldTotals(slave: string, limit?: number): Promise<HeldTotals>;
  /** Starts reconciling an inventory of `slave` (full unless `options.partial`). */
  beginRemerge(slave: string, options?: RemergeOptions): Promise<Remerge>;
  /**
   * The slave-clock time at which the scan of `slave`'s last completed remerge started (its
   * `finish(scannedAt)`), or 0 when none is recorded: the `since` of a partial remerge.
   */
  remergeSince(slave: string): Promise<number>;
}
