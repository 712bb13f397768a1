import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { SlaveError } from "./_errors.ts";
import { diskSpace, scanInventory, Storage } from "./storage.ts";

/** A temp folder (symlink-free path) removed on dispose. */
async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.realPath(await Deno.makeTempDir({ prefix: "drftpd_storage_" }));
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

async function writeFile(path: string, data: Uint8Array | string): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  if (typeof data === "string") await Deno.writeTextFile(path, data);
  else await Deno.writeFile(path, data);
}

async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof SlaveError, `expected SlaveError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("Storage refuses symlinks leading out of the root for reads and writes", async () => {
  await using root = await tempDir();
  await using outside = await tempDir();
  await writeFile(`${outside.path}/secret.txt`, "top secret");
  await Deno.symlink(outside.path, `${root.path}/escape`);
  await Deno.symlink(`${outside.path}/secret.txt`, `${root.path}/secret.lnk`);
  const storage = new Storage(root.path);

  await rejectsWithCode(storage.resolve("/escape/secret.txt"), "outside_root");
  await rejectsWithCode(storage.checksum("/escape/secret.txt"), "outside_root");
  await rejectsWithCode(storage.checksum("/secret.lnk"), "outside_root");
  await rejectsWithCode(storage.prepareUpload("/escape/new/file.bin"), "outside_root");
  await rejectsWithCode(storage.prepareUpload("/escape/new.bin"), "outside_root");
  await rejectsWithCode(storage.deleteFile("/escape/secret.txt"), "outside_root");
  await rejectsWithCode(storage.rename("/escape/secret.txt", "/mine.txt"), "outside_root");
  await rejectsWithCode(storage.rmdir("/escape"), "outside_root");
  assert.equal(await Deno.readTextFile(`${outside.path}/secret.txt`), "top secret");
  assert.ok(!(await exists(`${outside.path}/new`)));
});

Deno.test("Storage refuses paths that are not normalised, and the root itself", async () => {
  await using root = await tempDir();
  const storage = new Storage(root.path);
  await rejectsWithCode(storage.resolve("/a/../b"), "bad_request");
  await rejectsWithCode(storage.resolve("a/b"), "bad_request");
  await rejectsWithCode(storage.resolve("/a//b"), "bad_request");
  await rejectsWithCode(storage.rmdir("/"), "bad_request");
  await rejectsWithCode(storage.rename("/", "/x"), "bad_request");
  assert.equal(await storage.resolve("/a/b.bin"), `${root.path}/a/b.bin`);
});

Deno.test("Storage allows a symlink that stays inside the root", async () => {
  await using root = await tempDir();
  await writeFile(`${root.path}/real/file.txt`, "inside");
  await Deno.symlink(`${root.path}/real`, `${root.path}/alias`);
  const storage = new Storage(root.path);
  const sum = await storage.checksum("/alias/file.txt");
  assert.deepEqual(sum, { crc32: crc32("inside"), size: 6 });
});

Deno.test("scanInventory lists every regular file of a nested tree, skipping symlinks", async () => {
  await using root = await tempDir();
  await writeFile(`${root.path}/top.bin`, "1");
  await writeFile(`${root.path}/a/one.bin`, "22");
  await writeFile(`${root.path}/a/b/c/deep.bin`, "333");
  await writeFile(`${root.path}/x y/spaced name.txt`, "4444");
  await Deno.mkdir(`${root.path}/empty/dir`, { recursive: true });
  await Deno.symlink(`${root.path}/top.bin`, `${root.path}/a/link.bin`);
  await Deno.symlink(`${root.path}/a`, `${root.path}/dirlink`);
  const mtime = new Date("2020-01-02T03:04:05Z");
  await Deno.utime(`${root.path}/top.bin`, mtime, mtime);

  const seen = [];
  for await (const entry of scanInventory(root.path)) seen.push(entry);
  seen.sort((a, b) => a.path.localeCompare(b.path));
  assert.deepEqual(seen.map((e) => [e.path, e.size]), [
    ["/a/b/c/deep.bin", 3],
    ["/a/one.bin", 2],
    ["/top.bin", 1],
    ["/x y/spaced name.txt", 4],
  ]);
  assert.equal(seen.find((e) => e.path === "/top.bin")?.mtime, mtime.getTime());
});

Deno.test("scanInventory of an empty root yields nothing", async () => {
  await using root = await tempDir();
  const seen = [];
  for await (const entry of scanInventory(root.path)) seen.push(entry);
  assert.deepEqual(seen, []);
});

Deno.test("scanInventory gives the event loop turns during a big scan", async () => {
  await using root = await tempDir();
  const count = 2500;
  for (let d = 0; d < 5; d++) {
    Deno.mkdirSync(`${root.path}/d${d}`);
    for (let i = 0; i < count / 5; i++) {
      Deno.writeFileSync(`${root.path}/d${d}/f${i}`, new Uint8Array(0));
    }
  }
  // A timer due now fires only if the scan lets the event loop run: the consumer below awaits
  // nothing but the generator, which would otherwise run on microtasks alone.
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  let files = 0;
  let ticksBeforeEnd = 0;
  for await (const _ of scanInventory(root.path)) {
    files++;
    ticksBeforeEnd = ticks;
  }
  clearInterval(timer);
  assert.equal(files, count);
  assert.ok(ticksBeforeEnd > 0, "a timer fired while the scan was running");
});

Deno.test("deleteFile removes the file and prunes empty parents, never the root", async () => {
  await using root = await tempDir();
  await writeFile(`${root.path}/x/y/z.bin`, "z");
  await writeFile(`${root.path}/x/keep.bin`, "k");
  await writeFile(`${root.path}/solo/only.bin`, "o");
  const storage = new Storage(root.path);

  await storage.deleteFile("/x/y/z.bin");
  assert.ok(!(await exists(`${root.path}/x/y`)));
  assert.ok(await exists(`${root.path}/x/keep.bin`));

  await storage.deleteFile("/solo/only.bin");
  assert.ok(!(await exists(`${root.path}/solo`)));
  await storage.deleteFile("/x/keep.bin");
  assert.ok(!(await exists(`${root.path}/x`)));
  assert.ok(await exists(root.path));
});

Deno.test("deleteFile reports a missing file and refuses a folder", async () => {
  await using root = await tempDir();
  await Deno.mkdir(`${root.path}/dir`);
  const storage = new Storage(root.path);
  await rejectsWithCode(storage.deleteFile("/missing.bin"), "not_found");
  await rejectsWithCode(storage.deleteFile("/nodir/missing.bin"), "not_found");
  await rejectsWithCode(storage.deleteFile("/dir"), "not_a_file");
});

Deno.test("rename moves files and folders, creating target parents", async () => {
  await using root = await tempDir();
  await writeFile(`${root.path}/src/a.bin`, "a");
  await writeFile(`${root.path}/tree/sub/b.bin`, "b");
  const storage = new Storage(root.path);

  await storage.rename("/src/a.bin", "/dst/deep/a2.bin");
  assert.equal(await Deno.readTextFile(`${root.path}/dst/deep/a2.bin`), "a");
  assert.ok(!(await exists(`${root.path}/src`)), "emptied source folder is pruned");

  await storage.rename("/tree", "/moved/tree");
  assert.equal(await Deno.readTextFile(`${root.path}/moved/tree/sub/b.bin`), "b");
});

Deno.test("rename reports a missing source and an existing target", async () => {
  await using root = await tempDir();
  await writeFile(`${root.path}/a.bin`, "a");
  await writeFile(`${root.path}/b.bin`, "b");
  const storage = new Storage(root.path);
  await rejectsWithCode(storage.rename("/missing.bin", "/c.bin"), "not_found");
  await rejectsWithCode(storage.rename("/a.bin", "/b.bin"), "exists");
  await rejectsWithCode(storage.rename("/a.bin", "/a.bin/x"), "bad_request");
  assert.equal(await Deno.readTextFile(`${root.path}/b.bin`), "b");
});

Deno.test("rmdir removes a tree, accepts a missing folder, refuses a file", async () => {
  await using root = await tempDir();
  await writeFile(`${root.path}/p/d/e/f.bin`, "f");
  await writeFile(`${root.path}/file.bin`, "x");
  const storage = new Storage(root.path);
  await storage.rmdir("/p/d");
  assert.ok(!(await exists(`${root.path}/p`)));
  await storage.rmdir("/never/was");
  await rejectsWithCode(storage.rmdir("/file.bin"), "bad_request");
});

Deno.test("checksum matches node:zlib crc32 over several buffers", async () => {
  await using root = await tempDir();
  const data = new Uint8Array(700 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
  await writeFile(`${root.path}/big.bin`, data);
  await Deno.mkdir(`${root.path}/folder`);
  const storage = new Storage(root.path);
  assert.deepEqual(await storage.checksum("/big.bin"), {
    crc32: crc32(data),
    size: data.length,
  });
  await rejectsWithCode(storage.checksum("/folder"), "not_a_file");
  await rejectsWithCode(storage.checksum("/none.bin"), "not_found");
});

Deno.test("diskSpace reports the file system of the root", async () => {
  await using root = await tempDir();
  const { free, total } = await diskSpace(root.path);
  assert.ok(Number.isSafeInteger(free) && Number.isSafeInteger(total));
  assert.ok(total > 0 && free >= 0 && free <= total);
});
