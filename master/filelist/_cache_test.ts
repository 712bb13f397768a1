import assert from "node:assert/strict";
import { ReadCache, watchWrites } from "./_cache.ts";
import { tempKv } from "./_test_kv.ts";
import { KvFilelist } from "./kv_filelist.ts";

Deno.test("ReadCache keeps values read at the current generation only", () => {
  const c = new ReadCache<number | null>(10);
  const g = c.generation;
  c.put("/a", 1, g);
  c.put("/none", null, g);
  assert.equal(c.get("/a"), 1);
  assert.equal(c.get("/none"), null);
  assert.equal(c.get("/b"), undefined);
  c.invalidate();
  assert.equal(c.get("/a"), undefined);
  c.put("/a", 2, g); // read before the write: not cached
  assert.equal(c.get("/a"), undefined);
  c.put("/a", 3, c.generation);
  assert.equal(c.get("/a"), 3);
});

Deno.test("ReadCache drops the oldest values past its size, and size 0 caches nothing", () => {
  const c = new ReadCache<number>(2);
  c.put("/1", 1, 0);
  c.put("/2", 2, 0);
  c.put("/3", 3, 0);
  assert.equal(c.size, 2);
  assert.equal(c.get("/1"), undefined);
  assert.equal(c.get("/3"), 3);
  const off = new ReadCache<number>(0);
  off.put("/1", 1, 0);
  assert.equal(off.get("/1"), undefined);
  assert.throws(() => new ReadCache(-1), /non-negative integer: -1/);
});

Deno.test("watchWrites reports commits (chained and failed), set and delete, and passes reads", async () => {
  await using t = await tempKv();
  let writes = 0;
  const kv = watchWrites(t.kv, () => writes++);
  await kv.set(["k"], 1);
  assert.equal(writes, 2);
  const r = await kv.get<number>(["k"]);
  assert.equal(r.value, 1);
  assert.equal(writes, 2);
  const ok = await kv.atomic().check(r).set(["k"], 2).sum(["n"], 1n).commit();
  assert.equal(ok.ok, true);
  assert.equal(writes, 4);
  const stale = await kv.atomic().check(r).set(["k"], 3).commit();
  assert.equal(stale.ok, false);
  assert.equal(writes, 6);
  await kv.delete(["k"]);
  assert.equal(writes, 8);
  assert.equal((await kv.get(["k"])).value, null);
  assert.equal((await kv.getMany([["n"]]))[0].value instanceof Deno.KvU64, true);
});

Deno.test("the filelist's cache never serves a value a write replaced", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv, { cacheEntries: 100 });
  const rec = { size: 5, mtime: 1, owner: "u", group: "g", crc32: null, slaves: ["s1"], xferMs: 0 };
  assert.equal(await fl.get("/f"), null); // cached miss
  await fl.putFile("/f", rec);
  assert.equal((await fl.get("/f"))?.kind, "file");
  const first = await fl.get("/f");
  assert.ok(first?.kind === "file");
  first.slaves.push("mutated by a caller"); // must not reach the cache
  assert.deepEqual((await fl.get("/f"))?.kind === "file" && (await fl.get("/f")), {
    kind: "file",
    name: "f",
    ...rec,
  });
  await fl.addHolder("/f", "s2");
  const held = await fl.get("/f");
  assert.deepEqual(held?.kind === "file" && held.slaves, ["s1", "s2"]);
  await fl.mkdir("/d", "u", "g");
  await fl.rename("/f", "/d/f");
  assert.equal(await fl.get("/f"), null);
  assert.equal((await fl.get("/d/f"))?.name, "f");
  await fl.deleteFile("/d/f");
  assert.equal(await fl.get("/d/f"), null);
  // a remerge writes through the same handle
  const m = await fl.beginRemerge("s1");
  await m.add([{ path: "/d/g", size: 7, mtime: 2 }]);
  await m.finish();
  assert.equal((await fl.get("/d/g"))?.kind, "file");
  await fl.rmdir("/d").catch(() => {}); // not empty: fails, cache still right
  assert.equal((await fl.get("/d"))?.kind, "dir");
});
