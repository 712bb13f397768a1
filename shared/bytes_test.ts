import assert from "node:assert/strict";
import { concat, readAll, writeAll, writeAllSync } from "./bytes.ts";

/** A writer that takes at most 3 bytes per call, like a socket with a full buffer. */
function trickle() {
  const got: number[] = [];
  return {
    got,
    write: (p: Uint8Array) => Promise.resolve(trickleSync(p, got)),
    writeSync: (p: Uint8Array) => trickleSync(p, got),
  };
}

function trickleSync(p: Uint8Array, got: number[]): number {
  const n = Math.min(3, p.length);
  got.push(...p.subarray(0, n));
  return n;
}

Deno.test("writeAll and writeAllSync loop over partial writes", async () => {
  const bytes = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  const a = trickle();
  await writeAll(a, bytes);
  assert.deepEqual(a.got, [...bytes]);
  const b = trickle();
  writeAllSync(b, bytes);
  assert.deepEqual(b.got, [...bytes]);
});

Deno.test("readAll reads to the end and enforces its cap", async () => {
  const chunks = [new Uint8Array([1, 2]), new Uint8Array([3]), new Uint8Array([4, 5, 6])];
  const reader = () => {
    let i = 0;
    return {
      read(p: Uint8Array): Promise<number | null> {
        const c = chunks[i++];
        if (c === undefined) return Promise.resolve(null);
        p.set(c);
        return Promise.resolve(c.length);
      },
    };
  };
  assert.deepEqual([...await readAll(reader())], [1, 2, 3, 4, 5, 6]);
  await assert.rejects(readAll(reader(), 5), RangeError);
  assert.deepEqual([...concat([])], []);
});
