import assert from "node:assert/strict";
import type { FinishedTransfer } from "./metrics.ts";
import { SiteMetrics } from "./metrics.ts";
import { ctime, formatXferlogLine, XferLog } from "./xferlog.ts";

const T: FinishedTransfer = {
  id: 1,
  user: "alice",
  remoteHost: "10.0.0.9",
  path: "/incoming/a.bin",
  direction: "upload",
  route: "direct",
  slave: "s1",
  ascii: false,
  size: null,
  started: 0,
  bytes: 1048576,
  outcome: "complete",
  ms: 2400,
};

Deno.test("ctime() writes C's ctime format in local time", () => {
  assert.equal(ctime(new Date(2026, 11, 6, 9, 5, 3)), "Sun Dec  6 09:05:03 2026");
  assert.equal(ctime(new Date(2027, 0, 25, 23, 59, 59)), "Mon Jan 25 23:59:59 2027");
});

Deno.test("formatXferlogLine() writes the wu-ftpd fields", () => {
  const end = new Date(2026, 11, 6, 16, 49, 3);
  const cases: [Partial<FinishedTransfer>, string][] = [
    [{}, "Sun Dec  6 16:49:03 2026 2 10.0.0.9 1048576 /incoming/a.bin b _ i r alice ftp 0 * c\n"],
    [
      { direction: "download", ascii: true, outcome: "failed", bytes: 10, ms: 10 },
      "Sun Dec  6 16:49:03 2026 1 10.0.0.9 10 /incoming/a.bin a _ o r alice ftp 0 * i\n",
    ],
    [
      { path: "/with space/and\nnewline", outcome: "aborted", ms: 61_600 },
      "Sun Dec  6 16:49:03 2026 62 10.0.0.9 1048576 /with_space/and_newline b _ i r alice ftp 0 * i\n",
    ],
  ];
  for (const [change, want] of cases) {
    const line = formatXferlogLine({ ...T, ...change }, end);
    assert.equal(line, want);
    assert.equal(line.trimEnd().split(" ").filter((f) => f !== "").length, 18, "18 fields");
  }
});

Deno.test("XferLog appends one line per finished transfer", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/xferlog`;
    await Deno.writeTextFile(path, "old line\n");
    const metrics = new SiteMetrics();
    {
      await using _log = await XferLog.open(path, metrics);
      metrics.startTransfer({ ...T, size: null }).end("complete", 5);
      metrics.startTransfer({ ...T, direction: "download", size: 9 }).end("aborted", 3);
    }
    metrics.startTransfer(T).end("complete", 1); // after close: not written
    const lines = (await Deno.readTextFile(path)).split("\n");
    assert.equal(lines[0], "old line");
    assert.match(lines[1]!, / 10\.0\.0\.9 5 \/incoming\/a\.bin b _ i r alice ftp 0 \* c$/);
    assert.match(lines[2]!, / 10\.0\.0\.9 3 \/incoming\/a\.bin b _ o r alice ftp 0 \* i$/);
    assert.equal(lines.length, 4);
    await assert.rejects(
      XferLog.open(`${dir}/missing/xferlog`, metrics),
      /Cannot open the xferlog ".*\/missing\/xferlog"/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
