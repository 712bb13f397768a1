import assert from "node:assert/strict";
import { parseSubject } from "../../shared/config.ts";
import type { PathAction } from "../../shared/config_types.ts";
import type { Entry, Filelist } from "../filelist/types.ts";
import { pathAllowed } from "./path_access.ts";
import { PathPolicy } from "./path_rules.ts";
import { defaultUser } from "./users.ts";
import { visibleFilelist } from "./visibility.ts";

/** Only `get` and `list` are used: entries by path, owned as given. */
function fakeFilelist(owners: Record<string, string>): Filelist {
  const entry = (path: string): Entry | null =>
    owners[path] === undefined ? null : {
      kind: "file",
      name: path.slice(path.lastIndexOf("/") + 1),
      size: 1,
      mtime: 0,
      owner: owners[path]!,
      group: "users",
      crc32: null,
      slaves: [],
      xferMs: 0,
    } as unknown as Entry;
  return {
    get: (p: string) => Promise.resolve(entry(p)),
    list: (dir: string) =>
      Promise.resolve(
        Object.keys(owners).filter((p) => p.slice(0, p.lastIndexOf("/")) === dir).map((p) =>
          entry(p)!
        ),
      ),
  } as unknown as Filelist;
}

const policy = new PathPolicy([
  { path: "/private/**", actions: { list: [parseSubject("=staff")] } },
  { path: "/drop/*/**", actions: { list: [] } },
]);
const files = fakeFilelist({
  "/pub/alice.bin": "alice",
  "/pub/bob.bin": "bob",
  "/private/s.bin": "root",
  "/drop/bob.bin": "bob",
});
const alice = defaultUser("alice");

Deno.test("pathAllowed: owners from the whole filelist, visibility, renames' new names", async () => {
  const view = visibleFilelist(files, policy, alice);
  const cases: [PathAction, string, boolean][] = [
    ["delete", "/pub/alice.bin", true],
    ["delete", "/pub/bob.bin", false],
    ["delete", "/pub/none.bin", true], // the handler answers "no such file"
    ["rename", "/pub/alice.bin", true],
    ["rename", "/pub/new-name.bin", true], // a new name: rename_own
    ["rename", "/pub/bob.bin", false],
    ["upload", "/pub/alice.bin", true],
    ["upload", "/pub/bob.bin", false], // overwrite someone else's
    ["upload", "/drop/bob.bin", false], // hidden, but still bob's
    ["upload", "/drop/new.bin", true], // write-only area
    ["delete", "/drop/bob.bin", false],
    ["list", "/private/s.bin", true], // let through: the view answers "missing"
    ["download", "/private/s.bin", true],
    ["makedir", "/private/d", false], // into a folder she cannot see
    ["upload", "/private/x.bin", false],
    ["makedir", "/pub/d", true],
  ];
  for (const [action, path, want] of cases) {
    assert.equal(await pathAllowed(policy, view, alice, action, path), want, `${action} ${path}`);
  }
  assert.equal(await view.get("/private/s.bin"), null);
  assert.deepEqual((await view.list("/drop")).map((e) => e.name), []);
  assert.deepEqual((await view.list("/pub")).map((e) => e.name), ["alice.bin", "bob.bin"]);
  const root = defaultUser("root", { admin: true });
  assert.equal(visibleFilelist(files, policy, root), files);
  assert.equal(await pathAllowed(policy, files, root, "delete", "/pub/bob.bin"), true);
});
