import assert from "node:assert/strict";
import {
  baseName,
  collisionPath,
  containedRealPath,
  isCollisionName,
  isNormalized,
  isWithin,
  joinPath,
  normalize,
  parentOf,
  PathError,
  utf8Length,
} from "./paths.ts";

Deno.test("normalize resolves against the cwd and never climbs above /", () => {
  const cases: [string, string, string][] = [
    ["/", "", "/"],
    ["/", ".", "/"],
    ["/a", "b", "/a/b"],
    ["/a", "/b", "/b"],
    ["/a/b", "..", "/a"],
    ["/a", "../../..", "/"],
    ["/", "//x///y/", "/x/y"],
    ["/a", "./b/./c/..", "/a/b"],
    ["/", "../etc/passwd", "/etc/passwd"],
    ["/", "name with spaces", "/name with spaces"],
    ["/", "ünïcødé", "/ünïcødé"],
  ];
  for (const [cwd, arg, want] of cases) assert.equal(normalize(cwd, arg), want, `${cwd} + ${arg}`);
});

Deno.test("normalize refuses control characters and overlong input", () => {
  assert.throws(() => normalize("/", "a\x00b"), PathError);
  assert.throws(() => normalize("/", "a\r\nb"), /control character/);
  assert.throws(() => normalize("/", "x".repeat(5000)), /too long/);
  assert.throws(() => normalize("/", "y".repeat(300)), /Name too long/);
});

Deno.test("names and paths are limited in UTF-8 bytes, not characters", () => {
  // 100 characters, 300 bytes: a slave's file system refuses it (NAME_MAX is in bytes)
  assert.throws(() => normalize("/", "€".repeat(100)), /Name too long: 300 bytes/);
  assert.equal(normalize("/", "€".repeat(85)), "/" + "€".repeat(85)); // 255 bytes
  assert.throws(() => normalize("/", "😀".repeat(64)), /256 bytes/); // surrogate pairs: 4 bytes
  assert.equal(normalize("/", "y".repeat(255)), "/" + "y".repeat(255));
  const deeper = Array.from({ length: 21 }, () => "é".repeat(100)).join("/");
  assert.throws(() => normalize("/", deeper), /Path too long: 4221 bytes/);
});

Deno.test("utf8Length matches TextEncoder", () => {
  for (const s of ["", "abc", "é", "€", "😀", "a😀b€é", "\ud800", "x\udc00y"]) {
    assert.equal(utf8Length(s), new TextEncoder().encode(s).length, JSON.stringify(s));
  }
});

Deno.test("path helpers", () => {
  assert.equal(parentOf("/"), "/");
  assert.equal(parentOf("/a"), "/");
  assert.equal(parentOf("/a/b"), "/a");
  assert.equal(baseName("/a/b"), "b");
  assert.equal(baseName("/"), "");
  assert.equal(joinPath("/", "x"), "/x");
  assert.equal(joinPath("/a", "x"), "/a/x");
  assert.ok(isWithin("/a/b", "/a"));
  assert.ok(isWithin("/a", "/a"));
  assert.ok(!isWithin("/ab", "/a"));
  assert.ok(isWithin("/anything", "/"));
  assert.ok(isNormalized("/a/b"));
  assert.ok(!isNormalized("/a/../b"));
  assert.ok(!isNormalized("a"));
  assert.ok(!isNormalized("/a/"));
});

Deno.test("containedRealPath maps under the root and refuses symlink escapes", async () => {
  const root = await Deno.realPath(await Deno.makeTempDir());
  const outside = await Deno.realPath(await Deno.makeTempDir());
  try {
    await Deno.mkdir(`${root}/d`);
    await Deno.writeTextFile(`${outside}/secret`, "x");
    await Deno.symlink(outside, `${root}/escape`);
    await Deno.symlink(`${root}/d`, `${root}/inside`);
    assert.equal(await containedRealPath(root, "/d/new.bin"), `${root}/d/new.bin`);
    assert.equal(await containedRealPath(root, "/"), root);
    assert.equal(await containedRealPath(root, "/inside/f"), `${root}/inside/f`);
    await assert.rejects(() => containedRealPath(root, "/escape/secret"), PathError);
    await assert.rejects(() => containedRealPath(root, "/escape/new/deeper"), PathError);
    await assert.rejects(() => containedRealPath(root, "/../x"), PathError);
    // a dangling symlink pointing outside: writing through it would create a file out there
    await Deno.symlink(`${outside}/not-yet`, `${root}/d/dangling`);
    await assert.rejects(() => containedRealPath(root, "/d/dangling"), /dangling symlink/);
    await assert.rejects(() => containedRealPath(root, "/d/dangling/x"), PathError);
    // dangling but pointing inside the root is refused too: what it points at may change
    await Deno.symlink(`${root}/d/later`, `${root}/d/dangling-in`);
    await assert.rejects(() => containedRealPath(root, "/d/dangling-in"), /dangling symlink/);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("collisionPath() sets a file aside in its folder under a name isCollisionName() knows", () => {
  assert.equal(
    collisionPath("/a/b.bin", 1700000000123),
    "/a/.drftpd-collision.1700000000123.b.bin",
  );
  assert.equal(collisionPath("/b.bin", 5.7), "/.drftpd-collision.5.b.bin");
  const long = collisionPath(`/d/${"x".repeat(255)}`, 1);
  assert.equal(baseName(long).length, 255);
  assert.ok(isCollisionName(baseName(long)));
  assert.ok(!isCollisionName("b.bin"));
  assert.ok(!isCollisionName(".drftpd-copy.x.b.bin"));
});
