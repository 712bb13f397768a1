import assert from "node:assert/strict";
import { PathBusyError, PathLocks } from "./path_locks.ts";

Deno.test("an upload excludes other transfers of its path and changes on it or above it", () => {
  const locks = new PathLocks();
  const up = locks.transfer("/a/b/f.bin", "upload");
  assert.throws(() => locks.transfer("/a/b/f.bin", "upload"), PathBusyError);
  assert.throws(() => locks.transfer("/a/b/f.bin", "download"), PathBusyError);
  for (const p of ["/a/b/f.bin", "/a/b", "/a", "/"]) {
    assert.throws(() => locks.change(p), /in use by a transfer/, p);
  }
  // neighbours are free
  locks.change("/a/b/g.bin")[Symbol.dispose]();
  locks.change("/a/b/f.bin2")[Symbol.dispose]();
  locks.transfer("/a/b/g.bin", "upload")[Symbol.dispose]();
  up[Symbol.dispose]();
  up[Symbol.dispose](); // idempotent
  locks.change("/a")[Symbol.dispose]();
  locks.transfer("/a/b/f.bin", "upload")[Symbol.dispose]();
});

Deno.test("downloads share a path; a change holds its paths and everything under them", () => {
  const locks = new PathLocks();
  const d1 = locks.transfer("/f", "download");
  const d2 = locks.transfer("/f", "download");
  assert.throws(() => locks.transfer("/f", "upload"), PathBusyError);
  d1[Symbol.dispose]();
  assert.throws(() => locks.transfer("/f", "upload"), PathBusyError);
  d2[Symbol.dispose]();
  const c = locks.change("/d", "/e");
  assert.throws(() => locks.transfer("/d/x", "upload"), /being changed/);
  assert.throws(() => locks.transfer("/e", "download"), /being changed/);
  locks.transfer("/f", "upload")[Symbol.dispose]();
  c[Symbol.dispose]();
  locks.transfer("/d/x", "upload")[Symbol.dispose]();
});
