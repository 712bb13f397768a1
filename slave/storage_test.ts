import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { SlaveError } from "./_errors.ts";
import { baseName, COLLISION_PREFIX, collisionPath, isReservedName } from "../shared/paths.ts";
import {
  COPY_TEMP_PREFIX,
  copyTempPath,
  diskSpace,
  isArriving,
  scanInventory,
  type ScanItem,
  type ScanStats,
  scanTree,
  SINCE_SLACK_MS,
  Storage,
  UPLOAD_TEMP_PREFIX,
  uploadTempPath,
} from "./storage.ts";

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
  await rejectsWithCode(storage.setMtime("/secret.lnk", 0), "outside_root");
  await rejectsWithCode(storage.setMtime("/escape/secret.txt", 0), "outside_root");
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

/** Runs scanTree and returns the listed directories (with subdirectories) and file paths. */
async function scan(root: string, options: Parameters<typeof scanTree>[1] = {}) {
  const items: ScanItem[] = [];
  for await (const item of scanTree(root, options)) items.push(item);
  const dirs = new Map<string, string[]>();
  const files: string[] = [];
  for (const item of items) {
    if (item.kind === "dir") dirs.set(item.path, [...item.subdirs].sort());
    else files.push(item.entry.path);
  }
  return { items, dirs, files: files.sort() };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test("scanTree lists every directory with its subdirectories, each before anything below it", async () => {
  await using root = await tempDir();
  await writeFile(`${root.path}/top.bin`, "1");
  await writeFile(`${root.path}/a/one.bin`, "22");
  await writeFile(`${root.path}/a/b/c/deep.bin`, "333");
  await Deno.mkdir(`${root.path}/empty/dir`, { recursive: true });
  await Deno.symlink(`${root.path}/a`, `${root.path}/dirlink`);
  const { items, dirs, files } = await scan(root.path);
  assert.deepEqual(Object.fromEntries(dirs), {
    "/": ["a", "empty"],
    "/a": ["b"],
    "/a/b": ["c"],
    "/a/b/c": [],
    "/empty": ["dir"],
    "/empty/dir": [],
  });
  assert.deepEqual(files, ["/a/b/c/deep.bin", "/a/one.bin", "/top.bin"]);
  // A directory's own item comes after its files and before anything of its subdirectories.
  const at = (pred: (i: ScanItem) => boolean) => items.findIndex(pred);
  const dirAt = (p: string) => at((i) => i.kind === "dir" && i.path === p);
  const fileAt = (p: string) => at((i) => i.kind === "file" && i.entry.path === p);
  assert.ok(fileAt("/top.bin") < dirAt("/"));
  assert.ok(dirAt("/") < fileAt("/a/one.bin") && fileAt("/a/one.bin") < dirAt("/a"));
  assert.ok(dirAt("/a") < dirAt("/a/b") && dirAt("/a/b") < fileAt("/a/b/c/deep.bin"));
});

Deno.test("scanTree with since lists only changed directories, still finding them deep down", async () => {
  await using root = await tempDir();
  for (const d of ["x/old1", "x/old2", "x/deep/er", "y", "z/gone"]) {
    await writeFile(`${root.path}/${d}/f1.bin`, "1");
    await writeFile(`${root.path}/${d}/f2.bin`, "22");
  }
  // Everything above is older than the threshold (file-system clocks are coarse: leave room).
  await sleep(50);
  const since = Date.now() + SINCE_SLACK_MS;
  await sleep(50);
  await writeFile(`${root.path}/x/deep/er/new.bin`, "333"); // a file added deep down
  await Deno.remove(`${root.path}/y/f1.bin`); // a file removed
  await Deno.remove(`${root.path}/z/gone`, { recursive: true }); // a directory removed
  await writeFile(`${root.path}/x/old1/f2.bin`, "rewritten in place"); // missed: dir unchanged

  const stats: ScanStats = { visited: 0, read: 0, listed: 0 };
  const { dirs, files } = await scan(root.path, { since, stats });
  assert.deepEqual(Object.fromEntries(dirs), {
    "/x/deep/er": [],
    "/y": [],
    "/z": [],
  });
  assert.deepEqual(files, [
    "/x/deep/er/f1.bin",
    "/x/deep/er/f2.bin",
    "/x/deep/er/new.bin",
    "/y/f2.bin",
  ]);
  assert.equal(stats.visited, 8); // /, x, x/old1, x/old2, x/deep, x/deep/er, y, z: not z/gone
  assert.equal(stats.listed, 3);
  // ext4, xfs and tmpfs count subdirectories in a directory's links: unchanged leaves are not
  // even read there.
  const rootInfo = await Deno.lstat(root.path);
  if (rootInfo.nlink === 2 + 3) assert.ok(stats.read < stats.visited, JSON.stringify(stats));

  // since 0 lists everything again; paths limits the walk to subtrees
  assert.equal((await scan(root.path)).dirs.size, 8);
  const sub = await scan(root.path, { paths: ["/x/deep", "/missing", "/y"] });
  assert.deepEqual([...sub.dirs.keys()].sort(), ["/x/deep", "/x/deep/er", "/y"]);
  assert.deepEqual(sub.files, [
    "/x/deep/er/f1.bin",
    "/x/deep/er/f2.bin",
    "/x/deep/er/new.bin",
    "/y/f2.bin",
  ]);
});

Deno.test("scanTree counts a directory whose ctime changed (moved, chmod) as changed", async () => {
  await using root = await tempDir();
  await writeFile(`${root.path}/a/moved/f.bin`, "1");
  await writeFile(`${root.path}/b/keep.bin`, "1");
  // Deno reports ctime in whole seconds: start the threshold at the next second.
  const second = Math.ceil((Date.now() + 20) / 1000) * 1000;
  await sleep(second - Date.now() + 20);
  const since = second + SINCE_SLACK_MS;
  // chmod changes ctime only; a directory moved into another keeps its old mtime too
  await Deno.chmod(`${root.path}/b`, 0o755);
  const { dirs } = await scan(root.path, { since });
  assert.deepEqual([...dirs.keys()], ["/b"]);
});

Deno.test("scanTree does not walk rescan paths that leave the root through a symlink", async () => {
  await using root = await tempDir();
  await using outside = await tempDir();
  await writeFile(`${outside.path}/sub/secret.bin`, "x");
  await Deno.symlink(outside.path, `${root.path}/link`);
  const { dirs, files } = await scan(root.path, { paths: ["/link", "/link/sub", "/../x"] });
  assert.deepEqual([dirs.size, files], [0, []]);
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

Deno.test("setMtime sets a file's and a folder's time, keeps the content", async () => {
  await using root = await tempDir();
  await writeFile(`${root.path}/f.bin`, "content");
  await Deno.mkdir(`${root.path}/d`);
  const storage = new Storage(root.path);
  const t = Date.UTC(2001, 1, 3, 4, 5, 6, 789);
  await storage.setMtime("/f.bin", t);
  await storage.setMtime("/d", t - 1000);
  assert.equal((await Deno.stat(`${root.path}/f.bin`)).mtime?.getTime(), t);
  assert.equal((await Deno.stat(`${root.path}/d`)).mtime?.getTime(), t - 1000);
  assert.equal(await Deno.readTextFile(`${root.path}/f.bin`), "content");
  await rejectsWithCode(storage.setMtime("/none.bin", t), "not_found");
});

Deno.test("diskSpace reports the file system of the root", async () => {
  await using root = await tempDir();
  const { free, total } = await diskSpace(root.path);
  assert.ok(Number.isSafeInteger(free) && Number.isSafeInteger(total));
  assert.ok(total > 0 && free >= 0 && free <= total);
});

Deno.test("temporary upload and copy names stay in the folder and within 255 bytes", () => {
  const xfer = "0b6f1c9e-8f0e-4a59-9d3e-2a7c1d5b9e01";
  assert.equal(uploadTempPath("/a/b.bin", xfer), `/a/.drftpd-upload.${xfer}.b.bin`);
  assert.equal(copyTempPath("/b.bin", xfer), `/.drftpd-copy.${xfer}.b.bin`);
  // 85 three-byte characters (255 bytes): cut at a character boundary, never past 255 bytes.
  const long = uploadTempPath(`/d/${"€".repeat(85)}`, xfer);
  const name = long.slice("/d/".length);
  assert.ok(new TextEncoder().encode(name).length <= 255);
  assert.ok(name.endsWith("€") && !name.includes("\uFFFD"));
  for (const n of [name, copyTempPath("/x", xfer).slice(1)]) assert.ok(isArriving(n), n);
  assert.ok(!isArriving("b.bin") && !isArriving("drftpd-upload.x"));
  assert.throws(() => uploadTempPath("/a", "../x"), SlaveError);
});

Deno.test("scanInventory skips uploads still arriving; sweepUnfinished removes old ones only", async () => {
  await using root = await tempDir();
  const xfer = "0b6f1c9e-8f0e-4a59-9d3e-2a7c1d5b9e01";
  await writeFile(`${root.path}/a/keep.bin`, "k");
  await writeFile(root.path + uploadTempPath("/a/cut.bin", xfer), "cut");
  await writeFile(root.path + copyTempPath("/a/b/cut.bin", xfer), "cut");
  const entries = [];
  for await (const e of scanInventory(root.path)) entries.push(e.path);
  assert.deepEqual(entries, ["/a/keep.bin"]);

  const storage = new Storage(root.path);
  const old = Date.now() - 60_000;
  assert.equal(await storage.sweepUnfinished(old), 0, "newer than the limit: kept");
  assert.equal(await storage.sweepUnfinished(Date.now() + 1000), 2);
  assert.ok(await exists(`${root.path}/a/keep.bin`));
  assert.ok(!(await exists(root.path + uploadTempPath("/a/cut.bin", xfer))));
  assert.ok(!(await exists(root.path + copyTempPath("/a/b/cut.bin", xfer))));
});

Deno.test("every name the slave keeps to itself lies in the reserved space clients cannot create", () => {
  for (const prefix of [UPLOAD_TEMP_PREFIX, COPY_TEMP_PREFIX, COLLISION_PREFIX]) {
    assert.ok(isReservedName(prefix), prefix);
  }
  assert.ok(isReservedName(baseName(uploadTempPath("/a/f.bin", "x1"))));
  assert.ok(isReservedName(baseName(copyTempPath("/a/f.bin", "x1"))));
  assert.ok(isReservedName(baseName(collisionPath("/a/f.bin", 1))));
  assert.ok(!isReservedName("drftpd-f.bin") && !isReservedName("f.drftpd-"));
});
