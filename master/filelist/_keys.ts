/**
 * The KV layout of the filelist, in one place: key builders, stored value shapes and the size
 * estimates the atomic-operation packer needs. Internal to `master/filelist/`.
 *
 * | key                              | value        | meaning                                          |
 * |----------------------------------|--------------|--------------------------------------------------|
 * | `["fs", parent, name]`           | StoredEntry  | a file or directory; "/" itself has no entry     |
 * | `["dv", dir]`                    | number (ms)  | bumped by every change of `["fs", dir, *]`        |
 * | `["held", slave, path]`          | number (gen) | holder index: `slave` holds file `path`          |
 * | `["remerge_gen", slave]`         | number       | latest remerge generation started for `slave`    |
 * | `["remerged", slave]`            | RemergeMark  | when `slave`'s last completed remerge scanned    |
 *
 * The `dv` ("directory version") key lets a batch that read many children of one directory
 * guard them all with a single `check()`: KV allows only 100 checks per atomic operation.
 */
import type { DirEntry, Entry, FileEntry } from "./types.ts";
import { baseName, parentOf, utf8Length } from "../../shared/paths.ts";

/** A file as stored: the name lives in the key. */
export type StoredFile = Omit<FileEntry, "name">;
/** A directory as stored. */
export type StoredDir = Omit<DirEntry, "name">;
/** Any stored entry. */
export type StoredEntry = StoredFile | StoredDir;

/** Owner and group of entries the filelist creates on its own (remerge). */
export const SYSTEM_OWNER = "drftpd";

/** Longest path (UTF-8 bytes) the filelist stores: KV keys are limited to 2048 bytes. */
export const MAX_STORED_PATH_BYTES = 1900;

/** The entry key of a non-root path. */
export function entryKey(path: string): Deno.KvKey {
  return ["fs", parentOf(path), baseName(path)];
}

/** The prefix of the entries directly inside `dir`. */
export function childrenPrefix(dir: string): Deno.KvKey {
  return ["fs", dir];
}

/**
 * The range of entries strictly deeper than the children of `dir` (not "/"): every key whose
 * parent starts with `dir + "/"`. "0" is the character after "/", so the end bound is exclusive.
 */
export function deepDescendantsRange(dir: string): { start: Deno.KvKey; end: Deno.KvKey } {
  return { start: ["fs", dir + "/"], end: ["fs", dir + "0"] };
}

/** The version key of directory `dir`. */
export function dirVersionKey(dir: string): Deno.KvKey {
  return ["dv", dir];
}

/** The range of version keys of the directories strictly below `dir` (not "/"). */
export function subDirVersionsRange(dir: string): { start: Deno.KvKey; end: Deno.KvKey } {
  return { start: ["dv", dir + "/"], end: ["dv", dir + "0"] };
}

/** The holder-index key: `slave` holds file `path`. */
export function heldKey(slave: string, path: string): Deno.KvKey {
  return ["held", slave, path];
}

/** The prefix of every holder-index key of `slave`. */
export function heldPrefix(slave: string): Deno.KvKey {
  return ["held", slave];
}

/** The key of `slave`'s latest remerge generation. */
export function generationKey(slave: string): Deno.KvKey {
  return ["remerge_gen", slave];
}

/** What `["remerged", slave]` holds. */
export interface RemergeMark {
  /** Slave clock, ms: when the slave started the scan of its last completed remerge. */
  scannedAt: number;
  /** Master clock, ms: when that remerge finished. */
  finishedAt: number;
  /** Whether it was a partial remerge. */
  partial: boolean;
}

/** The key of `slave`'s last completed remerge (a RemergeMark). */
export function remergeMarkKey(slave: string): Deno.KvKey {
  return ["remerged", slave];
}

/** The public entry for a stored one. */
export function toEntry(name: string, stored: StoredEntry): Entry {
  // copies (the holder list too): a stored value may sit in the read cache
  return stored.kind === "file"
    ? { ...stored, name, slaves: [...stored.slaves] }
    : { ...stored, name };
}

/** The stored form of an entry (drops the name, which the key carries). */
export function toStored(entry: Entry): StoredEntry {
  if (entry.kind === "file") {
    const { name: _name, ...rest } = entry;
    return rest;
  }
  const { name: _name, ...rest } = entry;
  return rest;
}

/** UTF-8 length of a string without allocating (one copy, in the module that owns paths). */
export { utf8Length };

/** Encoded size of a key, slightly overestimated (tuple encoding: tag + bytes + terminator). */
export function keyBytes(key: Deno.KvKey): number {
  let n = 0;
  for (const part of key) {
    if (typeof part === "string") n += utf8Length(part) + 2;
    else if (part instanceof Uint8Array) n += part.length + 2;
    else n += 10;
  }
  return n;
}

/** Serialized size of a stored entry, overestimated. */
export function storedBytes(v: StoredEntry): number {
  let n = 96 + 3 * (v.owner.length + v.group.length);
  if (v.kind === "file") { for (const s of v.slaves) n += 8 + 3 * s.length; }
  return n;
}

/** Most holders a file may list (keeps values and atomic operations small). */
export const MAX_HOLDERS = 64;

/** Size charged for a small numeric value. */
export const NUMBER_BYTES = 16;
