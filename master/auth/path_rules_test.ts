import assert from "node:assert/strict";
import { parseSubject } from "../../shared/config.ts";
import { type Intent, type PathAction, PathPolicy, type PermissionRule } from "./path_rules.ts";
import { defaultUser } from "./users.ts";

const subjects = (...s: string[]) => s.map(parseSubject);

/** The example plus a write-only upload area and a read-only archive. */
const RULES: PermissionRule[] = [
  {
    path: "/private/**",
    actions: {
      list: subjects("=staff"),
      download: subjects("=staff"),
      upload: subjects("=staff", "!guest"),
    },
  },
  { path: "/incoming/*", actions: { list: subjects("=staff"), download: subjects("=staff") } },
  {
    path: "/archive/**",
    actions: {
      upload: [],
      makedir: [],
      delete_own: [],
      rename_own: [],
      delete: [],
      rename: [],
    },
  },
];

const alice = defaultUser("alice");
const staff = defaultUser("sam", { groups: ["users", "staff"] });
const guest = defaultUser("guest", { groups: ["staff"] });
const root = defaultUser("root", { admin: true });

Deno.test("PathPolicy.allows: first matching rule naming the action decides; defaults", () => {
  const p = new PathPolicy(RULES);
  const cases: [string, PathAction, string, boolean][] = [
    ["alice", "list", "/private", false],
    ["alice", "list", "/private/a/b", false],
    ["alice", "download", "/private/x", false],
    ["alice", "upload", "/private/x", false],
    ["sam", "list", "/private/x", true],
    ["sam", "upload", "/private/x", true],
    ["guest", "list", "/private/x", true],
    ["guest", "upload", "/private/x", false], // !guest wins over =staff
    ["alice", "makedir", "/private/x", true], // rule does not name makedir: default
    ["alice", "list", "/incoming", true],
    ["alice", "list", "/incoming/x.bin", false],
    ["alice", "upload", "/incoming/x.bin", true],
    ["alice", "upload", "/archive/x", false],
    ["alice", "download", "/archive/x", true],
    ["alice", "delete_own", "/archive/x", false],
    ["root", "upload", "/archive/x", true], // admins are not bound by rules
    ["alice", "list", "/pub", true],
    ["alice", "delete", "/pub/x", false], // anyone's: admins only
    ["alice", "delete_own", "/pub/x", true],
    ["alice", "rename", "/pub/x", false],
    ["alice", "overwrite", "/pub/x", false],
    ["root", "delete", "/pub/x", true],
    ["alice", "fxp_upload", "/pub/x", true],
  ];
  const users = { alice, sam: staff, guest, root };
  for (const [name, action, path, want] of cases) {
    assert.equal(
      p.allows(users[name as keyof typeof users], action, path),
      want,
      `${name} ${action} ${path}`,
    );
  }
});

Deno.test("PathPolicy.decide: own entries, someone else's, new ones", () => {
  const p = new PathPolicy([]);
  const cases: [typeof alice, Intent, string | null, boolean][] = [
    [alice, "delete", "alice", true],
    [alice, "delete", "bob", false],
    [root, "delete", "bob", true],
    [alice, "rename", "alice", true],
    [alice, "rename", "bob", false],
    [alice, "upload", null, true], // a new file
    [alice, "upload", "alice", true], // over her own
    [alice, "upload", "bob", false], // over bob's: overwrite needed
    [root, "upload", "bob", true],
  ];
  for (const [user, intent, owner, want] of cases) {
    assert.equal(p.decide(user, intent, "/pub/f", owner), want, `${user.name} ${intent} ${owner}`);
  }
  const open = new PathPolicy([{ path: "/pub/**", actions: { overwrite: subjects("*") } }]);
  assert.equal(open.decide(alice, "upload", "/pub/f", "bob"), true);
  const strict = new PathPolicy([{
    path: "/**",
    actions: { delete_own: subjects("!alice", "*") },
  }]);
  assert.equal(strict.decide(alice, "delete", "/f", "alice"), false);
});

Deno.test("PathPolicy.visible: the path and every folder above it must be listable", () => {
  const p = new PathPolicy(RULES);
  assert.equal(p.visible(alice, "/"), true);
  assert.equal(p.visible(alice, "/private"), false);
  assert.equal(p.visible(alice, "/private/deep/file"), false);
  assert.equal(p.visible(staff, "/private/deep/file"), true);
  assert.equal(p.visible(alice, "/incoming"), true);
  assert.equal(p.visible(alice, "/incoming/x.bin"), false);
  const parentOnly = new PathPolicy([{ path: "/hidden", actions: { list: [] } }]);
  assert.equal(parentOnly.visible(alice, "/hidden/inner.txt"), false); // inherited
  assert.equal(parentOnly.visible(alice, "/hiddenx"), true);
  assert.equal(new PathPolicy([]).visible(alice, "/any/thing"), true);
  const writeOnly = new PathPolicy([{ path: "/incoming/*/**", actions: { list: [] } }]);
  assert.equal(writeOnly.visible(alice, "/incoming"), true);
  assert.equal(writeOnly.visible(alice, "/incoming/x.bin"), false);
  assert.equal(writeOnly.visible(alice, "/incoming/d/e.bin"), false);
  assert.equal(writeOnly.allows(alice, "upload", "/incoming/x.bin"), true);
});

Deno.test("parseSubject: forms and errors", () => {
  assert.deepEqual(parseSubject("*"), { negate: false, kind: "any", name: "" });
  assert.deepEqual(parseSubject("!=staff"), { negate: true, kind: "group", name: "staff" });
  assert.deepEqual(parseSubject("bob"), { negate: false, kind: "user", name: "bob" });
  for (const bad of ["", "=", "!", "a b", "=st/aff"]) {
    assert.throws(() => parseSubject(bad), TypeError, bad);
  }
});
