/**
 * Test data and file checks: random bytes, digests, file comparison, tree listings, temp dirs.
 *
 * @module
 */

import { UPLOAD_TEMP_PREFIX } from "../slave/storage.ts";
import { poll } from "./wait.ts";
import { crc32 } from "node:zlib";

/** Random bytes of the given length (crypto.getRandomValues fills at most 64 KiB per call). */
export function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += 65536) {
    crypto.getRandomValues(bytes.subarray(offset, Math.min(length, offset + 65536)));
  }
  return bytes;
}

/** Hex SHA-256 of some bytes: compare digests, not megabytes, so a failure message stays short. */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** CRC32 of some bytes as 8 lower-case hex digits (what XCRC answers, case aside). */
export function crc32Hex(bytes: Uint8Array): string {
  return (crc32(bytes) >>> 0).toString(16).padStart(8, "0");
}

/** True when both files exist and hold the same bytes. */
export async function sameFile(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([Deno.readFile(a), Deno.readFile(b)]);
  return x.length === y.length && (await sha256(x)) === (await sha256(y));
}

/** True when `path` exists (any kind of entry). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Every regular file under `root`, as paths relative to it with "/" separators, sorted. */
export async function listTree(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string, prefix: string): Promise<void> {
    for await (const entry of Deno.readDir(dir)) {
      const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
      if (entry.isDirectory) await walk(`${dir}/${entry.name}`, rel);
      else if (entry.isFile) out.push(rel);
    }
  }
  if (await exists(root)) await walk(root, "");
  return out.sort();
}

/** A temp dir removed on dispose (kept when DRFTPD_E2E_KEEP=1). */
export async function tempDir(prefix = "drftpd-e2e-"): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async [Symbol.asyncDispose]() {
      if (Deno.env.get("DRFTPD_E2E_KEEP") === "1") {
        console.error(`keeping ${path}`);
        return;
      }
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

/** Paths of entries under `root` whose base name is `name` (for "not stored on the master"). */
export async function findByName(root: string, name: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string): Promise<void> {
    for await (const entry of Deno.readDir(dir)) {
      const p = `${dir}/${entry.name}`;
      if (entry.name === name) out.push(p);
      if (entry.isDirectory) await walk(p);
    }
  }
  if (await exists(root)) await walk(root);
  return out;
}

/** Uploads still arriving in folder `dir` of a slave root: their temporary names, sorted. */
export async function arrivingUploads(dir: string): Promise<string[]> {
  const out: string[] = [];
  if (!await exists(dir)) return out;
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.startsWith(UPLOAD_TEMP_PREFIX)) out.push(entry.name);
  }
  return out.sort();
}

/**
 * Waits (bounded) until the slave has written `size` bytes of the upload arriving in folder `dir`
 * of its root, under its temporary name; returns that name. `logs` adds to a failure message.
 */
export async function waitForArrival(
  dir: string,
  size: number,
  logs: () => Promise<string> = () => Promise.resolve(""),
): Promise<string> {
  return await poll(async () => {
    for (const temp of await arrivingUploads(dir)) {
      const st = await Deno.stat(`${dir}/${temp}`).catch(() => null);
      if (st !== null && st.size >= size) return temp;
    }
    return undefined;
  }, {
    intervalMs: 25,
    describe: async () => `an upload of ${size} bytes arriving in ${dir}\n${await logs()}`,
  });
}
