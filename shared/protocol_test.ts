import assert from "node:assert/strict";
import {
  MAX_REMERGE_BATCH,
  MAX_RESCAN_PATHS,
  parseFromMaster,
  parseFromSlave,
} from "./protocol.ts";

Deno.test("remerge_request: since, optional subtree paths, master → slave only", () => {
  assert.deepEqual(parseFromMaster({ type: "remerge_request", since: 0 }), {
    type: "remerge_request",
    since: 0,
  });
  parseFromMaster({ type: "remerge_request", since: 1_790_000_000_000, paths: ["/a", "/b c"] });
  for (
    const bad of [
      { type: "remerge_request" },
      { type: "remerge_request", since: -1 },
      { type: "remerge_request", since: 1.5 },
      { type: "remerge_request", since: 0, paths: "/a" },
      { type: "remerge_request", since: 0, paths: [1] },
      { type: "remerge_request", since: 0, paths: Array(MAX_RESCAN_PATHS + 1).fill("/a") },
      { type: "remerge_request", since: 0, extra: 1 },
    ]
  ) {
    assert.throws(() => parseFromMaster(bad), TypeError, JSON.stringify(bad));
  }
  assert.throws(() => parseFromSlave({ type: "remerge_request", since: 0 }), /unknown message/);
});

Deno.test("remerge batches may carry directory listings; remerge_done carries scannedAt", () => {
  const dirs = [{ path: "/a", subdirs: ["b", "c d"], complete: true }];
  parseFromSlave({ type: "remerge", entries: [] });
  parseFromSlave({ type: "remerge", entries: [{ path: "/a/f", size: 1, mtime: 2 }], dirs });
  parseFromSlave({ type: "remerge_done", files: 3, scannedAt: 1_790_000_000_000 });
  const listing = (d: Record<string, unknown>) => ({ type: "remerge", entries: [], dirs: [d] });
  for (
    const bad of [
      listing({ path: "/a", subdirs: ["x/y"], complete: true }),
      listing({ path: "/a", subdirs: [".."], complete: true }),
      listing({ path: "/a", subdirs: [""], complete: true }),
      listing({ path: "/a", subdirs: ["n\0"], complete: true }),
      listing({ path: "/a", subdirs: [], complete: "yes" }),
      listing({ path: "/a", subdirs: [] }),
      listing({ path: "/a", subdirs: [], complete: true, more: 1 }),
      listing({ path: "/a", subdirs: Array(MAX_REMERGE_BATCH + 1).fill("x"), complete: true }),
      { type: "remerge", entries: [], dirs: {} },
      { type: "remerge_done", files: 3 },
    ]
  ) {
    assert.throws(() => parseFromSlave(bad), TypeError, JSON.stringify(bad));
  }
});

Deno.test("set_mtime: path and an integer time (before 1970 too), master → slave only", () => {
  const ok = { type: "set_mtime", id: 3, path: "/a b/f", mtime: Date.UTC(2001, 0, 1) };
  assert.deepEqual(parseFromMaster(ok), ok);
  parseFromMaster({ ...ok, mtime: -1000 });
  for (
    const bad of [
      { ...ok, mtime: 1.5 },
      { ...ok, mtime: "2001" },
      { ...ok, mtime: Number.MAX_VALUE },
      { type: "set_mtime", id: 3, path: "/f" },
      { ...ok, extra: true },
    ]
  ) {
    assert.throws(() => parseFromMaster(bad), TypeError, JSON.stringify(bad));
  }
  assert.throws(() => parseFromSlave(ok), /unknown message/);
});
