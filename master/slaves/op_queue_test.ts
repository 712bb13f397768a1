import assert from "node:assert/strict";
import { OpQueue, rewritePath } from "./op_queue.ts";

Deno.test("rewritePath applies deletes and renames in order", () => {
  const ops = [
    { op: "rename" as const, from: "/a", to: "/b" },
    { op: "delete" as const, path: "/b/x" },
    { op: "rename" as const, from: "/b/y", to: "/c/y" },
  ];
  assert.equal(rewritePath("/a/x", ops), null);
  assert.equal(rewritePath("/a/y", ops), "/c/y");
  assert.equal(rewritePath("/a/z", ops), "/b/z");
  assert.equal(rewritePath("/ab", ops), "/ab");
  assert.equal(rewritePath("/other", []), "/other");
});

Deno.test("rewritePath drops everything under a removed directory", () => {
  const ops = [
    { op: "rename" as const, from: "/old", to: "/d" },
    { op: "rmdir" as const, path: "/d/sub" },
  ];
  assert.equal(rewritePath("/old/sub/f", ops), null);
  assert.equal(rewritePath("/d/sub/deep/f", ops), null);
  assert.equal(rewritePath("/d/sub", ops), null);
  assert.equal(rewritePath("/d/subway", ops), "/d/subway");
  assert.equal(rewritePath("/old/keep", ops), "/d/keep");
});

Deno.test("OpQueue keeps operations per slave in order", async () => {
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(`${dir}/q.kv`);
  try {
    const q = new OpQueue(kv);
    await q.add("s1", { op: "delete", path: "/x" });
    await q.add("s1", { op: "rename", from: "/y", to: "/z" });
    await q.add("s2", { op: "delete", path: "/w" });
    const s1 = await q.list("s1");
    assert.deepEqual(s1.map((e) => e.op.op), ["delete", "rename"]);
    await q.done(s1[0]!.key);
    assert.equal((await q.list("s1")).length, 1);
    assert.equal((await q.list("s2")).length, 1);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
