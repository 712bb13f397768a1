import assert from "node:assert/strict";
import type { Filelist } from "../filelist/types.ts";
import { type FxpPolicy, globMatch, permits } from "./permissions.ts";
import { PathPolicy } from "./path_rules.ts";
import { defaultUser } from "./users.ts";
import { PATH_ACTIONS } from "../../shared/config_types.ts";

const alice = defaultUser("alice");
const root = defaultUser("root", { groups: ["admins"], admin: true });

Deno.test("globMatch", () => {
  const cases: [string, string, boolean][] = [
    ["/incoming/**", "/incoming/a/b.bin", true],
    ["/incoming/**", "/incoming", true],
    ["/incoming/**", "/incomingx/a", false],
    ["/in/*", "/in/a", true],
    ["/in/*", "/in/a/b", false],
    ["/*.iso", "/x.iso", true],
    ["/?.bin", "/ab.bin", false],
    ["/a.b", "/axb", false],
    ["/**", "/anything/at/all", true],
  ];
  for (const [g, p, want] of cases) assert.equal(globMatch(g, p), want, `${g} ~ ${p}`);
});

/** No entry anywhere: every target is new. */
const filelist = { get: () => Promise.resolve(null) } as unknown as Filelist;
const ctx = (fxp: FxpPolicy) => ({ filelist, fxp, paths: new PathPolicy([]) });
const open: FxpPolicy = { fxp: "allow", fxp_rules: [] };

Deno.test("permits: site_admin needs an admin; paths by default allow new targets", async () => {
  assert.equal(await permits(alice, { action: "site_admin", path: "/" }, ctx(open)), false);
  assert.equal(await permits(root, { action: "site_admin", path: "/" }, ctx(open)), true);
  assert.equal(await permits(alice, { action: "site_gadmin", path: null }, ctx(open)), false);
  const gadmin = defaultUser("gina", { groupAdmin: "crew" });
  assert.equal(await permits(gadmin, { action: "site_gadmin", path: null }, ctx(open)), true);
  // every path action but FXP (its own test below), and the plain SITE verbs
  const everyday = [...PATH_ACTIONS.filter((a) => !a.startsWith("fxp_")), "site_user"] as const;
  for (const action of everyday) {
    assert.equal(await permits(alice, { action, path: "/x" }, ctx(open)), true, action);
  }
});

Deno.test("permits fxp_*: global switch, then the first matching rule per direction", async () => {
  const rules = [{ path: "/incoming/**", upload: false, download: true }];
  const deny = ctx({ fxp: "deny", fxp_rules: [] });
  const fxp = (action: "fxp_upload" | "fxp_download", path: string | null, c = allow) =>
    permits(alice, { action, path }, c);
  const allow = ctx({ fxp: "allow", fxp_rules: rules });
  assert.equal(await fxp("fxp_download", "/x", deny), false);
  assert.equal(await fxp("fxp_download", null, deny), false);
  assert.equal(await fxp("fxp_upload", "/incoming/new.bin"), false);
  assert.equal(await fxp("fxp_download", "/incoming/new.bin"), true);
  assert.equal(await fxp("fxp_upload", "/elsewhere/new.bin"), true);
  assert.equal(await fxp("fxp_upload", null), true);
});
