import assert from "node:assert/strict";
import { KvFilelist } from "./kv_filelist.ts";
import { type FileEntry, FilelistError, type FileRecord } from "./types.ts";
import { tempKv } from "./_test_kv.ts";

function rec(size: number, slaves: string[] = ["s1"], extra: Partial<FileRecord> = {}): FileRecord {
  return {
    size,
    mtime: 1000,
    owner: "alice",
    group: "users",
    crc32: 42,
    slaves,
    xferMs: 5,
    ...extra,
  };
}

async function rejectsCode(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof FilelistError, `expected FilelistError, got ${e}`);
    assert.equal(e.code, code);
    return true;
  });
}

async function held(fl: KvFilelist, slave: string): Promise<string[]> {
  const out: string[] = [];
  for await (const p of fl.filesHeldBy(slave)) out.push(p);
  return out.sort();
}

async function names(fl: KvFilelist, dir: string): Promise<string[]> {
  return (await fl.list(dir)).map((e) => e.name);
}

Deno.test("root always exists and is an empty directory at first", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  const root = await fl.get("/");
  assert.equal(root?.kind, "dir");
  assert.deepEqual(await fl.list("/"), []);
  assert.equal(await fl.get("/nope"), null);
});

Deno.test("mkdir, list, rmdir and their error codes", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  const d = await fl.mkdir("/a", "alice", "users");
  assert.deepEqual({ ...d, mtime: 0 }, {
    kind: "dir",
    name: "a",
    mtime: 0,
    owner: "alice",
    group: "users",
  });
  await fl.mkdir("/a/b", "bob", "g");
  await fl.mkdir("/a/c", "bob", "g");
  assert.deepEqual(await names(fl, "/"), ["a"]);
  assert.deepEqual(await names(fl, "/a"), ["b", "c"]);
  assert.equal((await fl.get("/a/b"))?.owner, "bob");

  await rejectsCode(fl.mkdir("/a", "x", "y"), "exists");
  await rejectsCode(fl.mkdir("/", "x", "y"), "exists");
  await rejectsCode(fl.mkdir("/missing/x", "x", "y"), "not_found");
  await fl.putFile("/a/f", rec(1));
  await rejectsCode(fl.mkdir("/a/f", "x", "y"), "exists");
  await rejectsCode(fl.mkdir("/a/f/x", "x", "y"), "not_a_dir");
  await rejectsCode(fl.list("/missing"), "not_found");
  await rejectsCode(fl.list("/a/f"), "not_a_dir");

  await rejectsCode(fl.rmdir("/a"), "not_empty");
  await rejectsCode(fl.rmdir("/missing"), "not_found");
  await rejectsCode(fl.rmdir("/a/f"), "not_a_dir");
  await assert.rejects(fl.rmdir("/"), RangeError);
  await fl.rmdir("/a/b");
  assert.equal(await fl.get("/a/b"), null);
  assert.deepEqual(await names(fl, "/a"), ["c", "f"]);
});

Deno.test("mkdirs creates every missing level and stops at files", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  await fl.mkdir("/x", "alice", "users");
  await fl.mkdirs("/x/y/z/w", "bob", "g");
  assert.equal((await fl.get("/x"))?.owner, "alice");
  assert.equal((await fl.get("/x/y/z/w"))?.kind, "dir");
  assert.equal((await fl.get("/x/y"))?.owner, "bob");
  await fl.mkdirs("/x/y/z/w", "bob", "g"); // idempotent
  await fl.mkdirs("/", "bob", "g");
  await fl.putFile("/x/file", rec(1));
  await rejectsCode(fl.mkdirs("/x/file/deeper/still", "bob", "g"), "not_a_dir");
});

Deno.test("putFile and deleteFile keep the holder index in step", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  await fl.mkdir("/d", "alice", "users");
  const f = await fl.putFile("/d/f.bin", rec(10, ["s1", "s2"]));
  assert.deepEqual(f, {
    kind: "file",
    name: "f.bin",
    size: 10,
    mtime: 1000,
    owner: "alice",
    group: "users",
    crc32: 42,
    slaves: ["s1", "s2"],
    xferMs: 5,
  });
  assert.deepEqual(await fl.get("/d/f.bin"), f);
  assert.deepEqual(await held(fl, "s1"), ["/d/f.bin"]);
  assert.deepEqual(await held(fl, "s2"), ["/d/f.bin"]);

  // Replace: s1 dropped, s3 added.
  await fl.putFile("/d/f.bin", rec(11, ["s2", "s3"]));
  assert.deepEqual(await held(fl, "s1"), []);
  assert.deepEqual(await held(fl, "s2"), ["/d/f.bin"]);
  assert.deepEqual(await held(fl, "s3"), ["/d/f.bin"]);
  assert.equal((await fl.get("/d/f.bin") as FileEntry).size, 11);

  await rejectsCode(fl.putFile("/nodir/f", rec(1)), "not_found");
  await rejectsCode(fl.putFile("/d/f.bin/x", rec(1)), "not_a_dir");
  await rejectsCode(fl.putFile("/d", rec(1)), "not_a_file");
  await assert.rejects(fl.putFile("/d/g", rec(-1)), RangeError);
  await assert.rejects(fl.putFile("/d/../g", rec(1)), TypeError);

  const gone = await fl.deleteFile("/d/f.bin");
  assert.equal(gone.size, 11);
  assert.equal(await fl.get("/d/f.bin"), null);
  assert.deepEqual(await held(fl, "s2"), []);
  assert.deepEqual(await held(fl, "s3"), []);
  await rejectsCode(fl.deleteFile("/d/f.bin"), "not_found");
  await rejectsCode(fl.deleteFile("/d"), "not_a_file");
});

Deno.test("addHolder and removeHolder", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  await fl.putFile("/f", rec(3, ["s1"]));
  await fl.addHolder("/f", "s2");
  await fl.addHolder("/f", "s2"); // no-op
  assert.deepEqual((await fl.get("/f") as FileEntry).slaves, ["s1", "s2"]);
  assert.deepEqual(await held(fl, "s2"), ["/f"]);
  assert.equal(await fl.removeHolder("/f", "s9"), false);
  assert.equal(await fl.removeHolder("/f", "s1"), false);
  assert.deepEqual((await fl.get("/f") as FileEntry).slaves, ["s2"]);
  assert.deepEqual(await held(fl, "s1"), []);
  assert.equal(await fl.removeHolder("/f", "s2"), true);
  assert.equal(await fl.get("/f"), null);
  assert.deepEqual(await held(fl, "s2"), []);
  await rejectsCode(fl.addHolder("/f", "s1"), "not_found");
  await fl.mkdir("/d", "a", "b");
  await rejectsCode(fl.addHolder("/d", "s1"), "not_a_file");
  await assert.rejects(fl.addHolder("/d", ""), TypeError);
});

Deno.test("rename a file moves its holder keys", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  await fl.mkdir("/a", "u", "g");
  await fl.mkdir("/b", "u", "g");
  await fl.putFile("/a/f", rec(7, ["s1", "s2"]));
  await fl.rename("/a/f", "/b/g");
  assert.equal(await fl.get("/a/f"), null);
  const g = await fl.get("/b/g") as FileEntry;
  assert.equal(g.name, "g");
  assert.equal(g.size, 7);
  assert.deepEqual(await held(fl, "s1"), ["/b/g"]);
  assert.deepEqual(await held(fl, "s2"), ["/b/g"]);

  await fl.putFile("/b/h", rec(1));
  await rejectsCode(fl.rename("/b/g", "/b/h"), "exists");
  await rejectsCode(fl.rename("/b/nope", "/b/x"), "not_found");
  await rejectsCode(fl.rename("/b/g", "/nodir/x"), "not_found");
  await rejectsCode(fl.rename("/b/g", "/b/h/x"), "not_a_dir");
  await rejectsCode(fl.rename("/b/g", "/"), "exists");
  await assert.rejects(fl.rename("/", "/z"), RangeError);
  await fl.rename("/b/g", "/b/g"); // same path: no-op
  assert.equal((await fl.get("/b/g"))?.kind, "file");
});

Deno.test("rename a directory tree moves nested content and holder keys", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  await fl.mkdirs("/src/x/y", "u", "g");
  await fl.mkdir("/src/x0", "u", "g"); // sorts right after "x/": must not be confused with the subtree
  await fl.mkdir("/srcsib", "u", "g"); // shares a prefix with "/src"
  await fl.putFile("/srcsib/keep", rec(1, ["s1"]));
  await fl.putFile("/src/top", rec(1, ["s1"]));
  await fl.putFile("/src/x/mid", rec(2, ["s1", "s2"]));
  await fl.putFile("/src/x/y/deep", rec(3, ["s2"]));
  for (let i = 0; i < 450; i++) await fl.putFile(`/src/x/y/n${i}`, rec(i, ["s3"]));
  await fl.mkdir("/dst", "u", "g");

  await fl.rename("/src", "/dst/moved");

  assert.equal(await fl.get("/src"), null);
  assert.equal(await fl.get("/src/x/y/deep"), null);
  assert.deepEqual(await names(fl, "/"), ["dst", "srcsib"]);
  assert.deepEqual(await names(fl, "/dst/moved"), ["top", "x", "x0"]);
  assert.deepEqual(await names(fl, "/dst/moved/x"), ["mid", "y"]);
  assert.equal((await fl.list("/dst/moved/x/y")).length, 451);
  assert.equal((await fl.get("/dst/moved/x/y/deep") as FileEntry).size, 3);
  assert.deepEqual(await held(fl, "s1"), ["/dst/moved/top", "/dst/moved/x/mid", "/srcsib/keep"]);
  assert.deepEqual(await held(fl, "s2"), ["/dst/moved/x/mid", "/dst/moved/x/y/deep"]);
  assert.equal((await held(fl, "s3")).length, 450);
  assert.ok((await held(fl, "s3")).every((p) => p.startsWith("/dst/moved/x/y/n")));
  // Nothing of the old tree is left behind in KV.
  let leftovers = 0;
  for await (const r of t.kv.list({ prefix: [] })) {
    if (r.key.some((k) => typeof k === "string" && (k === "/src" || k.startsWith("/src/")))) {
      leftovers++;
    }
  }
  assert.equal(leftovers, 0);
  // The moved directories work as directories.
  await fl.rmdir("/dst/moved/x0");
  await rejectsCode(fl.rmdir("/dst/moved/x"), "not_empty");
  await fl.putFile("/dst/moved/x/y/new", rec(1));

  await assert.rejects(fl.rename("/dst", "/dst/moved/inside"), RangeError);
  await rejectsCode(fl.rename("/dst/moved", "/srcsib"), "exists");
});

Deno.test("data survives closing and reopening the KV file", async () => {
  await using t = await tempKv();
  let fl = new KvFilelist(t.kv);
  await fl.mkdirs("/p/q", "u", "g");
  await fl.putFile("/p/q/f", rec(99, ["s1"]));
  fl = new KvFilelist(await t.reopen());
  assert.equal((await fl.get("/p/q/f") as FileEntry).size, 99);
  assert.deepEqual(await held(fl, "s1"), ["/p/q/f"]);
  assert.deepEqual(await names(fl, "/p"), ["q"]);
});

Deno.test("concurrent uploads into one directory and rmdir do not lose or orphan entries", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  await fl.mkdir("/c", "u", "g");
  await Promise.all(
    Array.from({ length: 50 }, (_, i) => fl.putFile(`/c/f${i}`, rec(i, [`s${i % 3}`]))),
  );
  assert.equal((await fl.list("/c")).length, 50);
  // rmdir racing with an upload: either the upload fails (not_found) or rmdir fails (not_empty).
  await fl.mkdir("/r", "u", "g");
  const [a, b] = await Promise.allSettled([fl.rmdir("/r"), fl.putFile("/r/x", rec(1))]);
  const dirGone = a.status === "fulfilled";
  const fileThere = b.status === "fulfilled";
  assert.notEqual(dirGone, fileThere);
  if (dirGone) assert.equal(await fl.get("/r/x"), null);
});

Deno.test("setMtime changes only the time of a file or directory", async () => {
  await using t = await tempKv();
  const fl = new KvFilelist(t.kv);
  await fl.mkdir("/d", "u", "g");
  const rec = { size: 5, mtime: 1, owner: "u", group: "g", crc32: 7, slaves: ["s1"], xferMs: 3 };
  await fl.putFile("/d/f", rec);
  assert.deepEqual(await fl.setMtime("/d/f", -5000), {
    kind: "file",
    name: "f",
    ...rec,
    mtime: -5000,
  });
  assert.deepEqual(await fl.get("/d/f"), { kind: "file", name: "f", ...rec, mtime: -5000 });
  assert.equal((await fl.setMtime("/d", 42)).mtime, 42);
  assert.equal((await fl.get("/d"))?.mtime, 42);
  await assert.rejects(
    fl.setMtime("/d/none", 1),
    (e: unknown) => (e as { code?: string }).code === "not_found",
  );
  await assert.rejects(fl.setMtime("/", 1), RangeError);
  await assert.rejects(fl.setMtime("/d/f", 1.5), RangeError);
});
