import assert from "node:assert/strict";
import { KvFilelist } from "./kv_filelist.ts";
import type { FileEntry, ListedDirectory, RemergeOptions, RemergeStats } from "./types.ts";
import { tempKv } from "./_test_kv.ts";

type Inv = { path: string; size: number; mtime: number }[];

const f = (path: string, size = 1): Inv[number] => ({ path, size, mtime: 1 });
const dir = (path: string, subdirs: string[] = [], complete = true): ListedDirectory => ({
  path,
  subdirs,
  complete,
});

async function full(fl: KvFilelist, slave: string, inv: Inv): Promise<RemergeStats> {
  const r = await fl.beginRemerge(slave);
  await r.add(inv);
  return await r.finish(1000);
}

async function partial(
  fl: KvFilelist,
  slave: string,
  inv: Inv,
  dirs: ListedDirectory[],
  options: RemergeOptions = {},
): Promise<RemergeStats> {
  const r = await fl.beginRemerge(slave, { partial: true, ...options });
  await r.add(inv, dirs);
  return await r.finish(2000);
}

async function tree(fl: KvFilelist): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  const walk = async (path: string) => {
    for (const e of await fl.list(path)) {
      const p = path === "/" ? `/${e.name}` : `${path}/${e.name}`;
      if (e.kind === "dir") {
        out[p + "/"] = [];
        await walk(p);
      } else out[p] = [...e.slaves].sort();
    }
  };
  await walk("/");
  return out;
}

/** s1 holds /a (files, a subtree), /b and /c; /a/shared is also on s2; /a/empty is a bare MKD. */
async function site(fl: KvFilelist): Promise<void> {
  await full(fl, "s1", [
    f("/a/f1"),
    f("/a/f2"),
    f("/a/shared", 3),
    f("/a/sub/x"),
    f("/a/sub/deep/y"),
    f("/b/g1"),
    f("/c/h1", 5),
  ]);
  await full(fl, "s2", [f("/a/shared", 3), f("/c/h1", 5)]);
  await fl.mkdir("/a/empty", "u", "g");
}

Deno.test("partial remerge reconciles only the listed directories", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  await site(fl);
  // On s1's disk: /a/f2 and /a/shared deleted, /a/new.bin added, /a/sub deleted; /b not listed
  // (unchanged), so its file stays although the slave did not report it.
  const s = await partial(fl, "s1", [f("/a/f1"), f("/a/new.bin", 7)], [dir("/a", [])]);
  assert.deepEqual(s, {
    seen: 2,
    added: 1,
    removed: 1,
    dropped: 3,
    resized: 0,
    conflicts: 0,
    listed: 1,
    pruned: 2,
  });
  assert.deepEqual(await tree(fl), {
    "/a/": [],
    "/a/empty/": [], // never held anything of s1: not pruned
    "/a/f1": ["s1"],
    "/a/new.bin": ["s1"],
    "/a/shared": ["s2"],
    "/b/": [],
    "/b/g1": ["s1"],
    "/c/": [],
    "/c/h1": ["s1", "s2"],
  });
  assert.equal((await fl.get("/a/new.bin") as FileEntry).size, 7);
  const held: string[] = [];
  for await (const p of fl.filesHeldBy("s1")) held.push(p);
  assert.deepEqual(held.sort(), ["/a/f1", "/a/new.bin", "/b/g1", "/c/h1"]);
});

Deno.test("partial remerge: a removed subtree with files of other slaves is kept for them", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  await full(fl, "s1", [f("/r/keep"), f("/r/rel/a"), f("/r/rel/cd1/b")]);
  await full(fl, "s2", [f("/r/rel/cd1/b")]);
  const s = await partial(fl, "s1", [f("/r/keep")], [dir("/r", [])]);
  assert.deepEqual([s.dropped, s.removed, s.pruned], [1, 1, 0]);
  assert.deepEqual(await tree(fl), {
    "/r/": [],
    "/r/keep": ["s1"],
    "/r/rel/": [],
    "/r/rel/cd1/": [],
    "/r/rel/cd1/b": ["s2"],
  });
});

Deno.test("partial remerge: a size conflict in a listed directory takes the slave off the file", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  await site(fl);
  // s1's copy of /c/h1 changed size while s2 still has the recorded one.
  const s = await partial(fl, "s1", [f("/c/h1", 9)], [dir("/c")]);
  assert.deepEqual([s.conflicts, s.removed, s.dropped], [1, 1, 0]);
  const h1 = await fl.get("/c/h1") as FileEntry;
  assert.deepEqual([h1.size, h1.slaves], [5, ["s2"]]);
  // A different size with s1 as the only holder is adopted instead.
  const s2 = await partial(fl, "s1", [f("/b/g1", 4)], [dir("/b")]);
  assert.deepEqual([s2.resized, s2.conflicts], [1, 0]);
  assert.equal((await fl.get("/b/g1") as FileEntry).size, 4);
});

Deno.test("partial remerge: unknown subdirectories are asked for, outermost first", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  await site(fl);
  const r = await fl.beginRemerge("s1", { partial: true });
  assert.equal(r.partial, true);
  // /a now also has "moved" (moved in from elsewhere: its own subdirectories look unchanged);
  // "empty" exists in the filelist but holds nothing of s1 either. "sub" is known.
  await r.add([f("/a/f1"), f("/a/f2"), f("/a/shared", 3)], [
    dir("/a", ["sub", "moved", "empty"]),
  ]);
  // Listed later in the same pass, below an unknown one: covered by its parent's rescan.
  await r.add([f("/a/moved/in/x")], [dir("/a/moved", ["in"]), dir("/a/moved/in")]);
  assert.deepEqual(r.takeRescans(1), ["/a/empty"]);
  assert.deepEqual(r.takeRescans(100), ["/a/moved"]);
  assert.deepEqual(r.takeRescans(100), []);
  // The rescan's listings are reconciled, but not examined for rescans again.
  await r.add([f("/a/moved/in/x"), f("/a/moved/top")], [
    dir("/a/moved", ["in", "other"]),
    dir("/a/moved/in"),
  ]);
  assert.deepEqual(r.takeRescans(100), []);
  const s = await r.finish(5000);
  assert.deepEqual([s.added, s.dropped, s.listed], [2, 0, 3]);
  assert.deepEqual((await fl.get("/a/moved/top") as FileEntry).slaves, ["s1"]);
  assert.equal(await fl.remergeSince("s1"), 5000);
});

Deno.test("partial remerge: uploads during it, protected paths and incomplete listings are kept", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  await site(fl);
  const r = await fl.beginRemerge("s1", {
    partial: true,
    protect: (p) => p === "/a/f2" || p.startsWith("/a/sub/"),
  });
  await r.add([f("/a/f1")], [dir("/a"), dir("/b", ["x"], false)]);
  await fl.putFile("/a/uploaded", {
    size: 2,
    mtime: 2,
    owner: "u",
    group: "g",
    crc32: 1,
    slaves: ["s1"],
    xferMs: 1,
  });
  const s = await r.finish();
  // /a/shared is gone from s1 (not protected); /a/f2 and /a/sub/** are protected; /b's listing
  // never completed, so /b is left alone.
  assert.deepEqual([s.listed, s.removed, s.dropped, s.pruned], [1, 1, 0, 0]);
  const t2 = await tree(fl);
  assert.deepEqual(t2["/a/f2"], ["s1"]);
  assert.deepEqual(t2["/a/sub/x"], ["s1"]);
  assert.deepEqual(t2["/a/uploaded"], ["s1"]);
  assert.deepEqual(t2["/b/g1"], ["s1"]);
  assert.deepEqual(t2["/a/shared"], ["s2"]);
});

Deno.test("remergeSince: 0 until a remerge completes with scannedAt; superseded ones do not count", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  assert.equal(await fl.remergeSince("s1"), 0);
  await full(fl, "s1", [f("/x")]);
  assert.equal(await fl.remergeSince("s1"), 1000);
  const old = await fl.beginRemerge("s1", { partial: true });
  const fresh = await fl.beginRemerge("s1", { partial: true });
  await assert.rejects(old.finish(7000), /superseded/);
  assert.equal(await fl.remergeSince("s1"), 1000);
  await fresh.finish(); // no scannedAt: nothing recorded
  assert.equal(await fl.remergeSince("s1"), 1000);
  assert.equal(await fl.remergeSince("s2"), 0);
  // The mark survives reopening the KV file.
  const again = new KvFilelist(await t.reopen());
  assert.equal(await again.remergeSince("s1"), 1000);
});

Deno.test("a full remerge ignores listings and sweeps everything not reported", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  await site(fl);
  const r = await fl.beginRemerge("s1");
  assert.equal(r.partial, false);
  await r.add([f("/a/f1")], [dir("/a", ["sub"])]);
  assert.deepEqual(r.takeRescans(10), []);
  const s = await r.finish();
  assert.deepEqual([s.listed, s.removed, s.dropped, s.pruned], [0, 2, 4, 0]);
  assert.deepEqual(await fl.get("/a/sub/x"), null);
});

Deno.test("partial remerge of a big directory touches only that directory", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  const inv: Inv = [];
  for (let d = 0; d < 20; d++) for (let i = 0; i < 500; i++) inv.push(f(`/big/d${d}/f${i}`));
  await full(fl, "s1", inv);
  const changed = inv.filter((e) => e.path.startsWith("/big/d3/") && e.path !== "/big/d3/f7");
  const t0 = performance.now();
  const s = await partial(fl, "s1", changed, [dir("/big/d3")]);
  const ms = performance.now() - t0;
  assert.deepEqual([s.seen, s.dropped, s.listed, s.added], [499, 1, 1, 0]);
  assert.equal(await fl.get("/big/d3/f7"), null);
  assert.ok(await fl.get("/big/d4/f7"));
  console.log(`partial remerge of one 500-file directory out of 10,000 files: ${ms.toFixed(0)} ms`);
});
