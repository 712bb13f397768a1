import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { concat } from "../shared/bytes.ts";
import type { ByteConn } from "../shared/link.ts";
import { SlaveError } from "./_errors.ts";
import { type DataSocket, type MoveHooks, RELAY_CHUNK, relayStream } from "./data_engine.ts";

/** An in-memory source that serves `data` in reads of at most `chunk` bytes and counts reads. */
class Source implements ByteConn {
  reads = 0;
  #data: Uint8Array;
  #at = 0;
  #chunk: number;
  constructor(data: Uint8Array, chunk: number) {
    this.#data = data;
    this.#chunk = chunk;
  }
  read(p: Uint8Array): Promise<number | null> {
    this.reads++;
    if (this.#at >= this.#data.length) return Promise.resolve(null);
    const n = Math.min(p.length, this.#chunk, this.#data.length - this.#at);
    p.set(this.#data.subarray(this.#at, this.#at + n));
    this.#at += n;
    return Promise.resolve(n);
  }
  write(): Promise<number> {
    return Promise.reject(new Error("read-only"));
  }
  close(): void {}
}

/** An in-memory sink whose writes complete only when the test lets them (`gate`). */
class Sink implements ByteConn {
  written: Uint8Array[] = [];
  #open = true;
  #waiting: (() => void)[] = [];
  /** Resolves when a write is pending. */
  writePending = Promise.withResolvers<void>();
  constructor(open: boolean) {
    this.#open = open;
  }
  read(): Promise<number | null> {
    return Promise.resolve(null);
  }
  async write(p: Uint8Array): Promise<number> {
    if (!this.#open) {
      this.writePending.resolve();
      await new Promise<void>((r) => this.#waiting.push(r));
    }
    this.written.push(p.slice());
    return p.length;
  }
  /** Lets every write through from now on. */
  gate(): void {
    this.#open = true;
    for (const w of this.#waiting.splice(0)) w();
  }
  close(): void {}
}

function socket(conn: ByteConn): DataSocket {
  return { plain: null as unknown as Deno.TcpConn, conn, secure: false, onDrop: () => () => true };
}

function hooks(progress: (n: number) => void = () => {}): MoveHooks {
  const fail = (e: unknown) => e instanceof SlaveError ? e : new SlaveError("io", String(e));
  return { signal: new AbortController().signal, readError: fail, writeError: fail, progress };
}

const tooLong = (n: number) => new SlaveError("mismatch", `too long: ${n}`);

Deno.test("relayStream passes every byte, reports progress and CRC32, and tees each chunk", async () => {
  const data = new Uint8Array(700_001).map((_, i) => (i * 131 + (i >> 9)) & 0xff);
  const sink = new Sink(true);
  const teed: Uint8Array[] = [];
  const seen: number[] = [];
  const moved = await relayStream(
    socket(new Source(data, 65_536)),
    socket(sink),
    hooks((n) => seen.push(n)),
    { limit: data.length, tooLong, tee: (c) => teed.push(c.slice()) },
  );
  assert.deepEqual([moved.bytes, moved.crc, moved.path], [
    data.length,
    crc32(data),
    "native relay",
  ]);
  assert.deepEqual(concat(sink.written), data);
  assert.deepEqual(concat(teed), data);
  assert.equal(seen.at(-1), data.length);
});

Deno.test("relayStream fails with tooLong once the source sends more than the limit", async () => {
  const data = new Uint8Array(1000);
  const sink = new Sink(true);
  await assert.rejects(
    relayStream(socket(new Source(data, 300)), socket(sink), hooks(), { limit: 999, tooLong }),
    (e: unknown) => e instanceof SlaveError && e.code === "mismatch" && /1000/.test(e.message),
  );
  const passed = concat(sink.written).length;
  assert.ok(passed <= 999, `only bytes within the limit reach the sink (${passed})`);
});

Deno.test("relayStream reads the source no faster than the sink drains: one chunk ahead", async () => {
  const chunk = RELAY_CHUNK;
  const data = new Uint8Array(64 * chunk); // a source that could be read at once
  const source = new Source(data, chunk);
  const sink = new Sink(false);
  const relayed = relayStream(socket(source), socket(sink), hooks(), {
    limit: data.length,
    tooLong,
  });
  await sink.writePending.promise;
  // Give an eager reader every chance to run ahead (the source answers at once).
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(source.reads, 2, "the chunk being written and the one read ahead, no more");
  sink.gate();
  const moved = await relayed;
  assert.equal(moved.bytes, data.length);
});
