import assert from "node:assert/strict";
import type { ByteConn } from "../../shared/link.ts";
import { ControlLineReader, LineTooLongError } from "./line_reader.ts";

/** A fake connection that hands out the given chunks one per read, then EOF. */
class FakeConn implements ByteConn {
  #chunks: Uint8Array[];
  reads = 0;
  constructor(chunks: Uint8Array[]) {
    this.#chunks = chunks;
  }
  read(p: Uint8Array): Promise<number | null> {
    this.reads++;
    const c = this.#chunks.shift();
    if (c === undefined) return Promise.resolve(null);
    if (c.length > p.length) {
      p.set(c.subarray(0, p.length));
      this.#chunks.unshift(c.subarray(p.length));
      return Promise.resolve(p.length);
    }
    p.set(c);
    return Promise.resolve(c.length);
  }
  write(p: Uint8Array): Promise<number> {
    return Promise.resolve(p.length);
  }
  close(): void {}
}

function bytes(s: string): Uint8Array {
  // Latin-1 style: each char code becomes one byte (lets tests write raw 0xFF).
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

function byteByByte(b: Uint8Array): Uint8Array[] {
  return Array.from(b, (x) => Uint8Array.of(x));
}

async function readAll(reader: ControlLineReader): Promise<(string | null)[]> {
  const out: (string | null)[] = [];
  while (true) {
    const line = await reader.readLine();
    out.push(line);
    if (line === null) return out;
  }
}

const cases: { name: string; input: Uint8Array; want: (string | null)[] }[] = [
  { name: "CRLF", input: bytes("USER a\r\nPASS b\r\n"), want: ["USER a", "PASS b", null] },
  { name: "bare LF", input: bytes("USER a\nPASS b\n"), want: ["USER a", "PASS b", null] },
  { name: "mixed ends", input: bytes("A\r\nB\nC\r\n"), want: ["A", "B", "C", null] },
  { name: "empty lines", input: bytes("\r\n\n"), want: ["", "", null] },
  { name: "partial line at EOF", input: bytes("NOOP\r\nQUI"), want: ["NOOP", "QUI", null] },
  { name: "trailing CR at EOF", input: bytes("QUIT\r"), want: ["QUIT", null] },
  { name: "empty stream", input: bytes(""), want: [null] },
  { name: "CR inside a line kept", input: bytes("A\rB\r\n"), want: ["A\rB", null] },
  { name: "IAC IP IAC DM ABOR", input: bytes("\xff\xf4\xff\xf2ABOR\r\n"), want: ["ABOR", null] },
  { name: "IAC IAC is a literal 0xFF", input: bytes("X\xff\xffY\r\n"), want: ["X\ufffdY", null] },
  {
    name: "IAC WILL/WONT/DO/DONT drop option",
    input: bytes("\xff\xfb\x01\xff\xfc\x01\xff\xfd\x03\xff\xfe\x03NOOP\r\n"),
    want: ["NOOP", null],
  },
  {
    name: "IAC SB ... IAC SE dropped",
    input: bytes("\xff\xfa\x18\x00xterm\xff\xf0STAT\r\n"),
    want: ["STAT", null],
  },
  { name: "IAC option byte may be LF", input: bytes("\xff\xfd\nA\n"), want: ["A", null] },
  { name: "UTF-8", input: utf8("CWD /ünï/日本\r\n"), want: ["CWD /ünï/日本", null] },
  { name: "invalid UTF-8", input: bytes("CWD \xc3(\r\n"), want: ["CWD \ufffd(", null] },
  { name: "only IAC before EOF", input: bytes("\xff\xf4"), want: [null] },
];

for (const c of cases) {
  Deno.test(`ControlLineReader: ${c.name} (one chunk)`, async () => {
    assert.deepEqual(await readAll(new ControlLineReader(new FakeConn([c.input]))), c.want);
  });
  Deno.test(`ControlLineReader: ${c.name} (byte by byte)`, async () => {
    const conn = new FakeConn(byteByByte(c.input));
    assert.deepEqual(await readAll(new ControlLineReader(conn)), c.want);
  });
}

Deno.test("ControlLineReader: null stays null after EOF", async () => {
  const conn = new FakeConn([bytes("A")]);
  const r = new ControlLineReader(conn);
  assert.equal(await r.readLine(), "A");
  assert.equal(await r.readLine(), null);
  assert.equal(await r.readLine(), null);
});

Deno.test("ControlLineReader: pipelined lines come from one read", async () => {
  const conn = new FakeConn([bytes("PRET RETR x\r\nPASV\r\n")]);
  const r = new ControlLineReader(conn);
  assert.equal(await r.readLine(), "PRET RETR x");
  assert.equal(await r.readLine(), "PASV");
  assert.equal(conn.reads, 1);
});

Deno.test("ControlLineReader: line of exactly the cap is accepted", async () => {
  for (const end of ["\r\n", "\n"]) {
    const r = new ControlLineReader(new FakeConn([bytes(`abcd${end}x\n`)]), { maxLineBytes: 4 });
    assert.equal(await r.readLine(), "abcd");
    assert.equal(await r.readLine(), "x");
  }
});

const tooLong: { name: string; input: string }[] = [
  { name: "no line end", input: "abcdefgh" },
  { name: "one over, then LF", input: "abcde\n" },
  { name: "one over, then CRLF", input: "abcde\r\n" },
  { name: "cap then CR then data", input: "abcd\rX\n" },
  { name: "one over at EOF", input: "abcde" },
];

for (const c of tooLong) {
  Deno.test(`ControlLineReader: cap exceeded, ${c.name}`, async () => {
    for (const chunks of [[bytes(c.input)], byteByByte(bytes(c.input))]) {
      const r = new ControlLineReader(new FakeConn(chunks), { maxLineBytes: 4 });
      await assert.rejects(() => r.readLine(), LineTooLongError);
    }
  });
}

Deno.test("ControlLineReader: default cap is 4096 and telnet bytes do not count", async () => {
  const ok = "A".repeat(4096);
  const r = new ControlLineReader(new FakeConn([bytes(`\xff\xf4${ok}\r\n${ok}A\r\n`)]));
  assert.equal(await r.readLine(), ok);
  const err = await r.readLine().then(() => null, (e: unknown) => e);
  assert.ok(err instanceof LineTooLongError);
  assert.equal(err.maxLineBytes, 4096);
  assert.match(err.message, /4096/);
});

Deno.test("ControlLineReader: after LineTooLongError the rest of the line is skipped", async () => {
  const r = new ControlLineReader(new FakeConn([bytes("abcdefgh\r\nQUIT\r\n")]), {
    maxLineBytes: 4,
  });
  await assert.rejects(() => r.readLine(), LineTooLongError);
  assert.equal(await r.readLine(), "QUIT");
  assert.equal(await r.readLine(), null);
});

Deno.test("ControlLineReader: rejects a bad maxLineBytes", () => {
  for (const maxLineBytes of [0, -1, 1.5, NaN]) {
    assert.throws(() => new ControlLineReader(new FakeConn([]), { maxLineBytes }), RangeError);
  }
});
