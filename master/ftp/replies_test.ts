import assert from "node:assert/strict";
import { formatReply, quotePath, SYSTEM_STATUS } from "./replies.ts";

Deno.test("replies use the named codes: no literal code in a reply or an error", async () => {
  const literal = /\b(?:reply|FtpError)\(\s*[1-5]\d\d\b|\bcode: [1-5]\d\d\b/;
  const dir = new URL("./", import.meta.url);
  const found: string[] = [];
  for await (const f of Deno.readDir(dir)) {
    if (!f.name.endsWith(".ts") || f.name.endsWith("_test.ts") || f.name === "replies.ts") continue;
    const text = await Deno.readTextFile(new URL(f.name, dir));
    text.split("\n").forEach((line, i) => {
      if (literal.test(line)) found.push(`${f.name}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(found, []);
});

const cases: { name: string; code: number; text: string | readonly string[]; want: string }[] = [
  { name: "single line", code: 226, text: "Done", want: "226 Done\r\n" },
  { name: "empty text", code: 200, text: "", want: "200 \r\n" },
  { name: "array of one", code: 226, text: ["Done"], want: "226 Done\r\n" },
  { name: "empty array", code: 200, text: [], want: "200 \r\n" },
  { name: "two lines", code: 211, text: ["first", "last"], want: "211-first\r\n211 last\r\n" },
  {
    name: "inner lines get a space",
    code: 211,
    text: ["Features:", "UTF8", "MDTM", "End"],
    want: "211-Features:\r\n UTF8\r\n MDTM\r\n211 End\r\n",
  },
  {
    name: "inner line already starting with a space is kept",
    code: 250,
    text: ["Listing /a", " type=file;size=1; /a", "End"],
    want: "250-Listing /a\r\n type=file;size=1; /a\r\n250 End\r\n",
  },
  {
    name: "empty inner line",
    code: 214,
    text: ["a", "", "b"],
    want: "214-a\r\n \r\n214 b\r\n",
  },
  {
    name: "string with LF becomes multi-line",
    code: 211,
    text: "first\nmiddle\nlast",
    want: "211-first\r\n middle\r\n211 last\r\n",
  },
  {
    name: "CRLF and bare CR split too",
    code: 214,
    text: "a\r\nb\rc",
    want: "214-a\r\n b\r\n214 c\r\n",
  },
  {
    name: "file name with CRLF 226 cannot forge a reply end (two lines)",
    code: 257,
    text: `${quotePath("/x\r\n226 fake")} created`,
    want: '257-"/x\r\n257 226 fake" created\r\n',
  },
  {
    name: "file name with CRLF 226 inside a multi-line body",
    code: 213,
    text: ["Status of x", "name\r\n226 fake", "End"],
    want: "213-Status of x\r\n name\r\n 226 fake\r\n213 End\r\n",
  },
  {
    name: "file name with CRLF 226 at the end ends with our own code",
    code: 250,
    text: "Deleted a\r\n226 fake",
    want: "250-Deleted a\r\n250 226 fake\r\n",
  },
  {
    name: "y-diaeresis is not doubled (UTF-8 never carries a raw 0xFF byte)",
    code: 250,
    text: "ÿ.txt",
    want: "250 ÿ.txt\r\n",
  },
];

for (const c of cases) {
  Deno.test(`formatReply: ${c.name}`, () => {
    assert.equal(formatReply(c.code, c.text), c.want);
  });
}

Deno.test("formatReply: only the last line starts with the code and a space", () => {
  const wire = formatReply(SYSTEM_STATUS, ["a", "226 x", "211 y", "\n226 z\r\n", "end"]);
  const lines = wire.split("\r\n");
  assert.equal(lines.pop(), "");
  const ends = lines.filter((l) => /^\d{3} /.test(l));
  assert.deepEqual(ends, ["211 end"]);
  assert.ok(!/[\r\n]/.test(lines.join("")));
});

Deno.test("formatReply: rejects bad codes", () => {
  for (const code of [0, 99, 600, 226.5, NaN]) {
    assert.throws(() => formatReply(code, "x"), RangeError);
  }
});

const quoteCases: [string, string][] = [
  ["/", '"/"'],
  ["/a b", '"/a b"'],
  ['/say "hi"', '"/say ""hi"""'],
  ['"', '""""'],
];

for (const [path, want] of quoteCases) {
  Deno.test(`quotePath: ${JSON.stringify(path)}`, () => {
    assert.equal(quotePath(path), want);
  });
}
