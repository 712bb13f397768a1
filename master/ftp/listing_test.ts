import assert from "node:assert/strict";
import type { DirEntry, Entry, FileEntry } from "../filelist/types.ts";
import { formatReply } from "./replies.ts";
import {
  formatListing,
  formatListLine,
  formatMlstLine,
  formatMlsxFacts,
  formatNlst,
  listedEntries,
  parseListArgs,
} from "./listing.ts";

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);

function file(
  name: string,
  size: number,
  mtime: number,
  extra: Partial<FileEntry> = {},
): FileEntry {
  return {
    kind: "file",
    name,
    size,
    mtime,
    owner: "owner",
    group: "group",
    crc32: null,
    slaves: ["s1"],
    xferMs: 0,
    ...extra,
  };
}

function dir(name: string, mtime: number, extra: Partial<DirEntry> = {}): DirEntry {
  return { kind: "dir", name, mtime, owner: "owner", group: "group", ...extra };
}

const listCases: { name: string; e: Entry; offline?: boolean; want: string }[] = [
  {
    name: "recent file",
    e: file("name", 1234, Date.UTC(2026, 10, 25, 7, 56)),
    want: "-rw-r--r--   1 owner    group        1234 Nov 25 07:56 name",
  },
  {
    name: "directory",
    e: dir("sub dir", Date.UTC(2026, 5, 1, 0, 5)),
    want: "drwxr-xr-x   1 owner    group           0 Jun  1 00:05 sub dir",
  },
  {
    name: "old file shows the year",
    e: file("old", 5, Date.UTC(2025, 0, 2, 3, 4)),
    want: "-rw-r--r--   1 owner    group           5 Jan  2  2025 old",
  },
  {
    name: "just under six months old shows the time",
    e: file("f", 1, Date.UTC(2026, 4, 27, 13, 0)),
    want: "-rw-r--r--   1 owner    group           1 May 27 13:00 f",
  },
  {
    name: "just over six months old shows the year",
    e: file("f", 1, Date.UTC(2026, 4, 26, 0, 0)),
    want: "-rw-r--r--   1 owner    group           1 May 26  2026 f",
  },
  {
    name: "a minute in the future shows the time",
    e: file("f", 1, NOW + 60_000),
    want: "-rw-r--r--   1 owner    group           1 Nov 25 12:01 f",
  },
  {
    name: "far future shows the year",
    e: file("f", 1, Date.UTC(2027, 2, 1)),
    want: "-rw-r--r--   1 owner    group           1 Mar  1  2027 f",
  },
  {
    name: "offline file",
    e: file("gone.bin", 10, Date.UTC(2026, 10, 25, 7, 56)),
    offline: true,
    want: "----------   1 owner    group          10 Nov 25 07:56 gone.bin",
  },
  {
    name: "offline does not change a directory",
    e: dir("d", Date.UTC(2026, 10, 25, 7, 56)),
    offline: true,
    want: "drwxr-xr-x   1 owner    group           0 Nov 25 07:56 d",
  },
  {
    name: "long owner, big size",
    e: file("big", 123456789012, Date.UTC(2026, 10, 25, 7, 56), {
      owner: "averylongowner",
      group: "g",
    }),
    want: "-rw-r--r--   1 averylongowner g        123456789012 Nov 25 07:56 big",
  },
  {
    name: "CR/LF in the name become ?",
    e: file("a\r\n226 fake", 1, Date.UTC(2026, 10, 25, 7, 56)),
    want: "-rw-r--r--   1 owner    group           1 Nov 25 07:56 a??226 fake",
  },
  {
    name: "spaces and controls in owner/group",
    e: file("f", 1, Date.UTC(2026, 10, 25, 7, 56), { owner: "a b", group: "x\ny" }),
    want: "-rw-r--r--   1 a_b      x?y             1 Nov 25 07:56 f",
  },
];

for (const c of listCases) {
  Deno.test(`formatListLine: ${c.name}`, () => {
    const options = c.offline === undefined ? {} : { offline: c.offline };
    assert.equal(formatListLine(c.e, NOW, options), c.want);
  });
}

Deno.test("formatListing: CRLF after every line, offline decided per file", () => {
  const entries: Entry[] = [
    dir("d", Date.UTC(2026, 10, 25, 7, 56)),
    file("on", 1, Date.UTC(2026, 10, 25, 7, 56)),
    file("off", 2, Date.UTC(2026, 10, 25, 7, 56), { slaves: [] }),
  ];
  const got = formatListing(entries, NOW, { isOffline: (e) => e.slaves.length === 0 });
  assert.equal(
    got,
    "drwxr-xr-x   1 owner    group           0 Nov 25 07:56 d\r\n" +
      "-rw-r--r--   1 owner    group           1 Nov 25 07:56 on\r\n" +
      "----------   1 owner    group           2 Nov 25 07:56 off\r\n",
  );
  assert.equal(formatListing([], NOW), "");
  assert.ok(!formatListing(entries, NOW).includes("----------"));
});

Deno.test("formatListing: hostile names never add lines", () => {
  const entries = [file("x\r\n-rw-r--r-- 1 a b 1 Jan 1 00:00 fake\n", 1, NOW), file("\r", 1, NOW)];
  const out = formatListing(entries, NOW);
  assert.equal(out.split("\r\n").length, 3);
  assert.equal(out.replaceAll("\r\n", "").search(/[\r\n]/), -1);
});

Deno.test("formatNlst", () => {
  assert.equal(formatNlst([dir("d", NOW), file("a b", 1, NOW)]), "d\r\na b\r\n");
  assert.equal(formatNlst([file("x\ny\r", 1, NOW)]), "x?y?\r\n");
  assert.equal(formatNlst([]), "");
});

const mlsxCases: { name: string; e: Entry; offline?: boolean; want: string }[] = [
  {
    name: "file",
    e: file("name", 1234, Date.UTC(2026, 10, 25, 7, 56), { owner: "u", group: "g" }),
    want: "type=file;size=1234;modify=20261125075600;perm=adfrw;UNIX.owner=u;UNIX.group=g; name",
  },
  {
    name: "directory",
    e: dir("my dir", Date.UTC(2026, 10, 25, 7, 56), { owner: "u", group: "g" }),
    want: "type=dir;modify=20261125075600;perm=flcdmpe;UNIX.owner=u;UNIX.group=g; my dir",
  },
  {
    name: "offline file",
    e: file("f", 0, 0, { owner: "u", group: "g" }),
    offline: true,
    want: "type=file;size=0;modify=19700101000000;perm=dfw;UNIX.owner=u;UNIX.group=g; f",
  },
  {
    name: "fact-breaking owner/group and hostile name",
    e: file("a\r\n226 x", 1, 0, { owner: "a;b=c d", group: "\n" }),
    want:
      "type=file;size=1;modify=19700101000000;perm=adfrw;UNIX.owner=a_b_c_d;UNIX.group=?; a??226 x",
  },
  {
    name: "unshowable time falls back to the epoch",
    e: file("f", 1, NaN, { owner: "u", group: "g" }),
    want: "type=file;size=1;modify=19700101000000;perm=adfrw;UNIX.owner=u;UNIX.group=g; f",
  },
];

for (const c of mlsxCases) {
  Deno.test(`formatMlsxFacts: ${c.name}`, () => {
    const options = c.offline === undefined ? {} : { offline: c.offline };
    assert.equal(formatMlsxFacts(c.e, options), c.want);
  });
}

Deno.test("formatMlstLine: leading space, full path, fits a 250 reply unchanged", () => {
  const e = file("b.bin", 7, Date.UTC(2026, 10, 25, 7, 56), { owner: "u", group: "g" });
  const line = formatMlstLine(e, "/a/b.bin");
  assert.equal(
    line,
    " type=file;size=7;modify=20261125075600;perm=adfrw;UNIX.owner=u;UNIX.group=g; /a/b.bin",
  );
  assert.equal(
    formatReply(250, ["Listing /a/b.bin", line, "End"]),
    `250-Listing /a/b.bin\r\n${line}\r\n250 End\r\n`,
  );
  assert.ok(formatMlstLine(e, "/x", { offline: true }).includes("perm=dfw;"));
  assert.ok(formatMlstLine(e, "/x\r\n250 y").endsWith(" /x??250 y"));
});

const listArgs: [string, string, string][] = [
  ["", "", ""],
  ["/dir", "/dir", ""],
  ["-a", "", "a"],
  ["-l", "", "l"],
  ["-la /dir", "/dir", "la"],
  ["-la  /dir with spaces ", "/dir with spaces ", "la"],
  ["-a -l sub", "sub", "al"],
  ["-R", "", "R"],
  ["-- -weird", "-weird", ""],
  ["-la -- -weird name", "-weird name", "la"],
  ["--", "", ""],
  ["-", "-", ""],
  ["- x", "- x", ""],
  ["file -la", "file -la", ""],
  ["-la*", "-la*", ""],
  ["dir with spaces", "dir with spaces", ""],
];

for (const [arg, path, options] of listArgs) {
  Deno.test(`parseListArgs(${JSON.stringify(arg)})`, () => {
    assert.deepEqual(parseListArgs(arg), { path, options });
  });
}

Deno.test("listedEntries leaves out files marked incomplete, keeps the rest in order", () => {
  const entries = [
    dir("d", NOW),
    file("cut.bin", 10, NOW, { incomplete: true }),
    file("whole.bin", 10, NOW),
  ];
  assert.deepEqual(listedEntries(entries).map((e) => e.name), ["d", "whole.bin"]);
  assert.deepEqual(listedEntries([]), []);
});
