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
  c.bump();
  assert.equal(c.get("/a"), 1); // bump alone keeps what is cached
  c.delete("/a");
  assert.equal(c.get("/a"), undefined);
  c.put("/a", 2, g); // read before the write: not cached
  assert.equal(c.get("/a"), undefined);
  c.put("/a", 3, c.generation);
  assert.equal(c.get("/a"), 3);
});

Deno.test("ReadCache drops the oldest values past its weight; size 0 caches nothing", () => {
  const c = new ReadCache<number>(5);
  c.put("/1", 1, 0, 2);
  c.put("/2", 2, 0, 2);
  c.put("/3", 3, 0, 2);
  assert.deepEqual([c.size, c.weight], [2, 4]);
  assert.equal(c.get("/1"), undefined);
  assert.equal(c.get("/3"), 3);
  c.put("/big", 9, 0, 6); // heavier than the whole cache: not cached, nothing dropped
  assert.deepEqual([c.size, c.weight, c.get("/big")], [2, 4, undefined]);
  c.put("/3", 4, 0, 1); // replacing a value replaces its weight
  assert.deepEqual([c.size, c.weight, c.get("/3")], [2, 3, 4]);
  const off = new ReadCache<number>(0);
  off.put("/1", 1, 0);
  assert.equal(off.get("/1"), undefined);
  assert.throws(() => new ReadCache(-1), /non-negative integer: -1/);
});

Deno.test("watchWrites reports the keys of commits (chained, failed), set and delete", async () => {
  await using t = await tempKv();
  const seen: string[] = [];
  const kv = watchWrites(t.kv, (keys) => seen.push(keys.map((k) => k.join("/")).join(",")));
  await kv.set(["k"], 1);
  assert.deepEqual(seen.splice(0), ["k", "k"]);
  const r = await kv.get<number>(["k"]);
  assert.equal(r.value, 1);
  assert.deepEqual(seen, []);
  const ok = await kv.atomic().check(r).set(["k"], 2).sum(["n"], 1n).delete(["x", "y"])
    .mutate({ type: "max", key: ["m"], value: new Deno.KvU64(3n) }).commit();
  assert.equal(ok.ok, true);
  assert.deepEqual(seen.splice(0), ["k,n,x/y,m", "k,n,x/y,m"]);
  const stale = await kv.atomic().check(r).set(["k"], 3).commit();
  assert.equal(stale.ok, false);
  assert.deepEqual(seen.splice(0), ["k", "k"]);
  await kv.delete(["k"]);
  assert.deepEqual(seen.splice(0), ["k", "k"]);
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

Deno.test("the filelist's cached listings follow every change of the directory", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv, { cacheEntries: 100 });
  const rec = { size: 1, mtime: 1, owner: "u", group: "g", crc32: null, slaves: ["s1"], xferMs: 0 };
  const names = async (dir: string) => (await fl.list(dir)).map((e) => e.name);
  await fl.mkdir("/a", "u", "g");
  await fl.mkdir("/b", "u", "g");
  assert.deepEqual(await names("/a"), []); // cached empty listing
  await fl.putFile("/a/1", rec);
  assert.deepEqual(await names("/a"), ["1"]);
  const listed = await fl.list("/a");
  listed.pop(); // callers get copies
  assert.deepEqual(await names("/a"), ["1"]);
  await fl.putFile("/a/2", { ...rec, size: 2 });
  assert.deepEqual((await fl.list("/a")).map((e) => e.kind === "file" && e.size), [1, 2]);
  assert.deepEqual(await names("/b"), []);
  await fl.rename("/a/1", "/b/1");
  assert.deepEqual([await names("/a"), await names("/b")], [["2"], ["1"]]);
  await fl.rename("/a", "/b/a"); // a directory tree
  assert.deepEqual(await names("/b/a"), ["2"]);
  assert.deepEqual(await names("/"), ["b"]);
  await assert.rejects(fl.list("/a"), /No such directory/);
  await fl.removeHolder("/b/a/2", "s1"); // last holder: the entry goes
  assert.deepEqual(await names("/b/a"), []);
  // a listing bigger than the whole cache is served, never cached
  const small = new KvFilelist(t.kv, { cacheEntries: 2 });
  await fl.putFile("/b/x", rec);
  assert.deepEqual(await small.list("/b").then((l) => l.map((e) => e.name)), ["1", "a", "x"]);
});
