/**
 * Byte helpers shared by master, slave, tests and the bench: whole writes (a `write` may take
 * fewer bytes than given), reading a stream to its end, and joining chunks.
 *
 * @module
 */

/** Something with a partial `write`, like `Deno.Conn`, a TLS connection or `Deno.FsFile`. */
export interface Writer {
  write(p: Uint8Array): Promise<number>;
}

/** Something with a partial `read` that returns null at the end, like `Deno.Conn`. */
export interface Reader {
  read(p: Uint8Array): Promise<number | null>;
}

/** Writes all of `bytes`, looping over partial writes. */
export async function writeAll(w: Writer, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await w.write(bytes.subarray(off));
}

/** Copies `src` to `dst` until `src` ends; returns the bytes copied (`counted` sees each chunk). */
export async function copy(
  src: Reader,
  dst: Writer,
  counted?: (bytes: number) => void,
): Promise<number> {
  const buf = new Uint8Array(256 * 1024);
  let total = 0;
  while (true) {
    const n = await src.read(buf);
    if (n === null) return total;
    await writeAll(dst, buf.subarray(0, n));
    total += n;
    counted?.(n);
  }
}

/** Writes all of `bytes` synchronously (a file or stderr), looping over partial writes. */
export function writeAllSync(w: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += w.writeSync(bytes.subarray(off));
}

/**
 * Reads `r` to its end and returns every byte. `maxBytes` (default 64 MiB) caps what is held:
 * more than that rejects with a `RangeError`.
 */
export async function readAll(r: Reader, maxBytes = 64 * 1024 * 1024): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  let total = 0;
  while (true) {
    const n = await r.read(buf);
    if (n === null) break;
    total += n;
    if (total > maxBytes) throw new RangeError(`Stream longer than ${maxBytes} bytes`);
    parts.push(buf.slice(0, n));
  }
  return concat(parts);
}

/** The chunks joined into one array. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
