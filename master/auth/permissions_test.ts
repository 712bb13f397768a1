import assert from "node:assert/strict";
import { fxpAllowed, globMatch, permits } from "./permissions.ts";
import { defaultUser } from "./users.ts";

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

Deno.test("permits: admin actions need an admin", () => {
  assert.equal(permits(alice, "admin", "/"), false);
  assert.equal(permits(root, "admin", "/"), true);
  assert.equal(permits(alice, "write", "/x"), true);
});

Deno.test("fxpAllowed: global switch, then the first matching rule per direction", () => {
  const rules = [{ path: "/incoming/**", upload: false, download: true }];
  assert.equal(fxpAllowed({ fxp: "deny", fxp_rules: [] }, alice, "download", "/x"), false);
  assert.equal(fxpAllowed({ fxp: "deny", fxp_rules: [] }, alice, null, null), false);
  const allow = { fxp: "allow" as const, fxp_rules: rules };
  assert.equal(fxpAllowed(allow, alice, "upload", "/incoming/new.bin"), false);
  assert.equal(fxpAllowed(allow, alice, "download", "/incoming/new.bin"), true);
  assert.equal(fxpAllowed(allow, alice, "upload", "/elsewhere/new.bin"), true);
  assert.equal(fxpAllowed(allow, alice, null, null), true);
});
