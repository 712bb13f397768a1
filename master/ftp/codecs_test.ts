import assert from "node:assert/strict";
import {
  formatEpsvReply,
  formatMdtm,
  formatPasvReply,
  isIPv4,
  isIPv6,
  parseEprtArg,
  parseEpsvArg,
  parseMdtm,
  parseMfmtArg,
  parseMfmtTime,
  parsePortArg,
  parseRestArg,
  parseTypeArg,
  splitWord,
  unmapIPv4,
  UnsupportedFamilyError,
} from "./codecs.ts";

type ErrorClass = new (...args: never[]) => Error;

function assertThrowsNaming(fn: () => unknown, cls: ErrorClass, arg: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    assert.ok(e.message.includes(`"${arg}"`), `message should name ${arg}: ${e.message}`);
    return true;
  });
}

// --- IP helpers -------------------------------------------------------------------------------

const ipv4: [string, boolean][] = [
  ["127.0.0.1", true],
  ["0.0.0.0", true],
  ["255.255.255.255", true],
  ["256.1.1.1", false],
  ["1.2.3", false],
  ["1.2.3.4.5", false],
  ["01.2.3.4", false],
  ["1.2.3.4 ", false],
  ["a.b.c.d", false],
  ["", false],
  ["::1", false],
];
for (const [s, want] of ipv4) {
  Deno.test(`isIPv4(${JSON.stringify(s)}) is ${want}`, () => assert.equal(isIPv4(s), want));
}

const ipv6: [string, boolean][] = [
  ["::1", true],
  ["::", true],
  ["2001:db8::ff00:42:8329", true],
  ["2001:0db8:0000:0000:0000:ff00:0042:8329", true],
  ["fe80::1", true],
  ["::ffff:1.2.3.4", true],
  ["::1.2.3.4", true],
  ["1:2:3:4:5:6:1.2.3.4", true],
  ["1:2:3:4:5:6:7:8", true],
  ["1:2:3:4:5:6:7", false],
  ["1:2:3:4:5:6:7:8:9", false],
  ["1:2:3:4:5:6:7::8", false],
  ["1::2::3", false],
  [":::", false],
  [":1", false],
  ["1:", false],
  ["12345::", false],
  ["g::1", false],
  ["::ffff:256.1.1.1", false],
  ["::ffff:1.2.3", false],
  ["1:2:3:4:5:6:7:1.2.3.4", false],
  ["fe80::1%eth0", false],
  ["1.2.3.4", false],
  ["", false],
];
for (const [s, want] of ipv6) {
  Deno.test(`isIPv6(${JSON.stringify(s)}) is ${want}`, () => assert.equal(isIPv6(s), want));
}

const unmap: [string, string][] = [
  ["::ffff:1.2.3.4", "1.2.3.4"],
  ["::FFFF:127.0.0.1", "127.0.0.1"],
  ["0:0:0:0:0:ffff:1.2.3.4", "1.2.3.4"],
  ["::ffff:102:304", "1.2.3.4"],
  ["::1", "::1"],
  ["::1.2.3.4", "::1.2.3.4"],
  ["1.2.3.4", "1.2.3.4"],
  ["2001:db8::1", "2001:db8::1"],
  ["junk", "junk"],
];
for (const [s, want] of unmap) {
  Deno.test(`unmapIPv4(${JSON.stringify(s)})`, () => assert.equal(unmapIPv4(s), want));
}

// --- PORT / PASV ------------------------------------------------------------------------------

const portOk: [string, string, number][] = [
  ["127,0,0,1,195,80", "127.0.0.1", 50000],
  ["10,0,0,2,0,21", "10.0.0.2", 21],
  ["255,255,255,255,255,255", "255.255.255.255", 65535],
  ["192,168,001,010,4,1", "192.168.1.10", 1025],
];
for (const [arg, host, port] of portOk) {
  Deno.test(`parsePortArg(${arg})`, () => assert.deepEqual(parsePortArg(arg), { host, port }));
}

const portBad: [string, ErrorClass][] = [
  ["", TypeError],
  ["x", TypeError],
  ["1,2,3,4,5", TypeError],
  ["1,2,3,4,5,6,7", TypeError],
  ["1,2,3,4,5,", TypeError],
  ["1, 2,3,4,5,6", TypeError],
  ["-1,2,3,4,5,6", TypeError],
  ["1,2,3,4,5,1000", TypeError],
  ["1.5,2,3,4,5,6", TypeError],
  ["256,0,0,1,4,1", RangeError],
  ["1,2,3,4,256,0", RangeError],
  ["127,0,0,1,0,0", RangeError],
];
for (const [arg, cls] of portBad) {
  Deno.test(`parsePortArg(${JSON.stringify(arg)}) throws ${cls.name}`, () => {
    assertThrowsNaming(() => parsePortArg(arg), cls, arg);
  });
}

Deno.test("formatPasvReply", () => {
  assert.equal(formatPasvReply("127.0.0.2", 50000), "Entering Passive Mode (127,0,0,2,195,80).");
  assert.equal(formatPasvReply("10.1.2.3", 21), "Entering Passive Mode (10,1,2,3,0,21).");
  assert.equal(formatPasvReply("::ffff:10.1.2.3", 256), "Entering Passive Mode (10,1,2,3,1,0).");
  assert.throws(() => formatPasvReply("::1", 5000), TypeError);
  assert.throws(() => formatPasvReply("example.com", 5000), TypeError);
  for (const port of [0, 65536, 1.5, -1]) {
    assert.throws(() => formatPasvReply("127.0.0.1", port), RangeError);
  }
});

Deno.test("formatPasvReply output parses back with parsePortArg", () => {
  const text = formatPasvReply("192.168.0.9", 61234);
  const tuple = /\((.*)\)/.exec(text)![1]!;
  assert.deepEqual(parsePortArg(tuple), { host: "192.168.0.9", port: 61234 });
});

// --- EPRT / EPSV ------------------------------------------------------------------------------

const eprtOk: [string, string, number, 1 | 2][] = [
  ["|1|132.235.1.2|6275|", "132.235.1.2", 6275, 1],
  ["|2|1080::8:800:200C:417A|5282|", "1080::8:800:200C:417A", 5282, 2],
  ["|2|::1|5282|", "::1", 5282, 2],
  ["!1!10.0.0.1!21!", "10.0.0.1", 21, 1],
  ["~2~::ffff:1.2.3.4~65535~", "::ffff:1.2.3.4", 65535, 2],
];
for (const [arg, host, port, family] of eprtOk) {
  Deno.test(`parseEprtArg(${arg})`, () => {
    assert.deepEqual(parseEprtArg(arg), { host, port, family });
  });
}

const eprtBad: [string, ErrorClass][] = [
  ["", TypeError],
  ["|1|1.2.3.4|21", TypeError],
  ["1|1.2.3.4|21|", TypeError],
  ["|1|1.2.3.4|21||", TypeError],
  [" 1 1.2.3.4 21 ", TypeError],
  ["\x7f1\x7f1.2.3.4\x7f21\x7f", TypeError],
  ["|1|::1|21|", TypeError],
  ["|2|1.2.3.4|21|", TypeError],
  ["|1|1.2.3.400|21|", TypeError],
  ["|1|host.example|21|", TypeError],
  ["|x|1.2.3.4|21|", TypeError],
  ["||1.2.3.4|21|", TypeError],
  ["|1|1.2.3.4||", TypeError],
  ["|1|1.2.3.4|-1|", TypeError],
  ["|1|1.2.3.4|123456|", TypeError],
  ["|1|1.2.3.4|0|", RangeError],
  ["|1|1.2.3.4|65536|", RangeError],
];
for (const [arg, cls] of eprtBad) {
  Deno.test(`parseEprtArg(${JSON.stringify(arg)}) throws ${cls.name}`, () => {
    assertThrowsNaming(() => parseEprtArg(arg), cls, arg);
  });
}

Deno.test("parseEprtArg: unknown family throws UnsupportedFamilyError", () => {
  assert.throws(() => parseEprtArg("|3|1.2.3.4|21|"), (e: unknown) => {
    assert.ok(e instanceof UnsupportedFamilyError);
    assert.equal(e.family, "3");
    return true;
  });
});

Deno.test("formatEpsvReply", () => {
  assert.equal(formatEpsvReply(6446), "Entering Extended Passive Mode (|||6446|)");
  for (const port of [0, 65536, 2.5]) assert.throws(() => formatEpsvReply(port), RangeError);
});

const epsv: [string, ReturnType<typeof parseEpsvArg>][] = [
  ["", { kind: "none" }],
  ["ALL", { kind: "all" }],
  ["all", { kind: "all" }],
  ["1", { kind: "family", family: 1 }],
  ["2", { kind: "family", family: 2 }],
];
for (const [arg, want] of epsv) {
  Deno.test(`parseEpsvArg(${JSON.stringify(arg)})`, () => {
    assert.deepEqual(parseEpsvArg(arg), want);
  });
}

Deno.test("parseEpsvArg: bad arguments", () => {
  assert.throws(() => parseEpsvArg("3"), UnsupportedFamilyError);
  assert.throws(() => parseEpsvArg("22"), UnsupportedFamilyError);
  assertThrowsNaming(() => parseEpsvArg("ALLX"), TypeError, "ALLX");
  assertThrowsNaming(() => parseEpsvArg(" 1"), TypeError, " 1");
});

// --- TYPE / REST ------------------------------------------------------------------------------

const typeOk: [string, "A" | "I"][] = [
  ["A", "A"],
  ["a", "A"],
  ["A N", "A"],
  ["a n", "A"],
  ["I", "I"],
  ["i", "I"],
  ["L 8", "I"],
  ["l 8", "I"],
];
for (const [arg, want] of typeOk) {
  Deno.test(`parseTypeArg(${JSON.stringify(arg)})`, () => assert.equal(parseTypeArg(arg), want));
}

const typeBad: [string, ErrorClass][] = [
  ["E", RangeError],
  ["A T", RangeError],
  ["A C", RangeError],
  ["E N", RangeError],
  ["L 16", RangeError],
  ["", TypeError],
  ["X", TypeError],
  ["I N", TypeError],
  ["L", TypeError],
  ["L8", TypeError],
  ["A N X", TypeError],
  ["AN", TypeError],
];
for (const [arg, cls] of typeBad) {
  Deno.test(`parseTypeArg(${JSON.stringify(arg)}) throws ${cls.name}`, () => {
    assertThrowsNaming(() => parseTypeArg(arg), cls, arg);
  });
}

const restOk: [string, number][] = [
  ["0", 0],
  ["1024", 1024],
  ["007", 7],
  ["9007199254740991", Number.MAX_SAFE_INTEGER],
];
for (const [arg, want] of restOk) {
  Deno.test(`parseRestArg(${arg})`, () => assert.equal(parseRestArg(arg), want));
}

const restBad: [string, ErrorClass][] = [
  ["", TypeError],
  ["-1", TypeError],
  ["1.5", TypeError],
  ["1e3", TypeError],
  [" 1", TypeError],
  ["abc", TypeError],
  ["9007199254740992", RangeError],
  ["99999999999999999999", RangeError],
];
for (const [arg, cls] of restBad) {
  Deno.test(`parseRestArg(${JSON.stringify(arg)}) throws ${cls.name}`, () => {
    assertThrowsNaming(() => parseRestArg(arg), cls, arg);
  });
}

// --- MDTM / MFMT ------------------------------------------------------------------------------

const mdtm: [number, string][] = [
  [0, "19700101000000"],
  [Date.UTC(2026, 10, 25, 7, 56, 0), "20261125075600"],
  [Date.UTC(2024, 1, 29, 23, 59, 59, 999), "20240229235959"],
  [Date.UTC(9999, 11, 31, 23, 59, 59), "99991231235959"],
];
for (const [ms, want] of mdtm) {
  Deno.test(`formatMdtm(${ms}) is ${want}`, () => assert.equal(formatMdtm(ms), want));
}

Deno.test("formatMdtm: out of range", () => {
  for (
    const ms of [NaN, Infinity, Date.UTC(10000, 0, 1), Date.parse("-000001-06-01T00:00:00Z"), -1e17]
  ) {
    assert.throws(() => formatMdtm(ms), RangeError);
  }
});

const mdtmParse: [string, number][] = [
  ["19700101000000", 0],
  ["20261125075600", Date.UTC(2026, 10, 25, 7, 56, 0)],
  ["20261125075600.5", Date.UTC(2026, 10, 25, 7, 56, 0, 500)],
  ["20261125075600.123", Date.UTC(2026, 10, 25, 7, 56, 0, 123)],
  ["20261125075600.1239", Date.UTC(2026, 10, 25, 7, 56, 0, 123)],
  ["20240229120000", Date.UTC(2024, 1, 29, 12)],
  ["00010101000000", -62135596800000],
];
for (const [s, want] of mdtmParse) {
  Deno.test(`parseMdtm(${s})`, () => {
    assert.equal(parseMdtm(s), want);
    assert.equal(parseMfmtTime(s), want);
  });
}

Deno.test("parseMdtm: year 1 is not shifted to 1901", () => {
  assert.equal(new Date(parseMdtm("00010101000000")).getUTCFullYear(), 1);
});

Deno.test("parseMdtm inverts formatMdtm", () => {
  const ms = Date.UTC(2031, 4, 6, 7, 8, 9);
  assert.equal(parseMdtm(formatMdtm(ms)), ms);
});

const mdtmBad: [string, ErrorClass][] = [
  ["", TypeError],
  ["2026112507560", TypeError],
  ["202611250756000", TypeError],
  ["20261125075600.", TypeError],
  ["2026-11-25 07:56", TypeError],
  [" 20261125075600", TypeError],
  ["20261325075600", RangeError],
  ["20260025075600", RangeError],
  ["20261100075600", RangeError],
  ["20250229120000", RangeError],
  ["20260431120000", RangeError],
  ["20261125240000", RangeError],
  ["20261125076000", RangeError],
  ["20261125075661", RangeError],
];
for (const [s, cls] of mdtmBad) {
  Deno.test(`parseMdtm(${JSON.stringify(s)}) throws ${cls.name}`, () => {
    assertThrowsNaming(() => parseMdtm(s), cls, s);
  });
}

Deno.test("parseMfmtArg", () => {
  assert.deepEqual(parseMfmtArg("20261125075600 /a dir/f.bin"), {
    ms: Date.UTC(2026, 10, 25, 7, 56),
    path: "/a dir/f.bin",
  });
  assert.deepEqual(parseMfmtArg("20261125075600.5 x"), {
    ms: Date.UTC(2026, 10, 25, 7, 56, 0, 500),
    path: "x",
  });
  assertThrowsNaming(() => parseMfmtArg("20261125075600"), TypeError, "20261125075600");
  assertThrowsNaming(() => parseMfmtArg("20261125075600 "), TypeError, "20261125075600 ");
  assert.throws(() => parseMfmtArg("2026 x"), TypeError);
  assert.throws(() => parseMfmtArg("20261325075600 x"), RangeError);
});

Deno.test("splitWord splits at the first space only", () => {
  assert.deepEqual(splitWord("20261125075600 /a dir/f"), {
    word: "20261125075600",
    rest: "/a dir/f",
  });
  assert.deepEqual(splitWord("word"), { word: "word", rest: "" });
  assert.deepEqual(splitWord("word "), { word: "word", rest: "" });
  assert.deepEqual(splitWord(" x"), { word: "", rest: "x" });
});
