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

/** What an upload records. */
export interface FileRecord {
  size: number;
  mtime: number;
  owner: string;
  group: string;
  crc32: number | null;
  slaves: string[];
  xferMs: number;
}

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
}

/** An open remerge of one slave: feed batches, then finish. */
export interface Remerge {
  /** Reconciles one batch of the slave's inventory. */
  add(entries: readonly { path: string; size: number; mtime: number }[]): Promise<void>;
  /** Removes the slave from every file it held before and did not report; returns the counters. */
  finish(): Promise<RemergeStats>;
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
  /** Deletes a file entry and returns it. Throws not_found / not_a_file. */
  deleteFile(path: string): Promise<FileEntry>;
  /** Renames a file or a whole directory tree. Throws not_found (source or target parent) / exists. */
  rename(from: string, to: string): Promise<void>;
  /** Adds `slave` to a file's holders (no-op if already there). */
  addHolder(path: string, slave: string): Promise<void>;
  /** Removes `slave` from a file's holders; deletes the entry when nobody holds it. Returns true if deleted. */
  removeHolder(path: string, slave: string): Promise<boolean>;
  /** Paths of all files recorded as held by `slave` (from the holder index). */
  filesHeldBy(slave: string): AsyncIterable<string>;
  /** Starts reconciling a full inventory of `slave`. */
  beginRemerge(slave: string): Promise<Remerge>;
}
