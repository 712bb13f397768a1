import assert from "node:assert/strict";
import { applyField, FieldError, formatUserLines, parseBytes } from "./user_fields.ts";
import { defaultUser, type User, type UserSettings } from "./users.ts";

function settings(): UserSettings {
  const { name: _n, primaryGroup: _p, created: _c, lastLogin: _l, stats: _s, ...rest } =
    defaultUser("x");
  return rest;
}

Deno.test("applyField: each field parses its value", () => {
  const cases: [string, string, Partial<UserSettings>][] = [
    ["ratio", "3", { ratio: 3 }],
    ["ratio", "0.5", { ratio: 0.5 }],
    ["credits", "3M", { credits: 3 * 2 ** 20 }],
    ["credits", "1048576", { credits: 2 ** 20 }],
    ["max_logins", "2", { maxLogins: 2 }],
    ["MAX_UPLOADS", "1", { maxUploads: 1 }],
    ["admin", "true", { admin: true }],
    ["disabled", "yes", { disabled: true }],
    ["expires", "2027-01-31", { expires: Date.UTC(2027, 0, 31) }],
    ["expires", "never", { expires: null }],
    ["group_admin", "staff", { groupAdmin: "staff" }],
    ["group_slots", "5", { groupSlots: 5 }],
    ["primary_group", "staff", { groups: ["staff", "users"] }],
  ];
  for (const [field, value, want] of cases) {
    const u = settings();
    applyField(u, field, value);
    assert.deepEqual(u, { ...settings(), ...want }, `${field} ${value}`);
  }
});

Deno.test("applyField: bad fields and values name what is wrong", () => {
  const cases: [string, string, RegExp][] = [
    ["colour", "red", /Unknown field "colour": use one of admin, credits/],
    ["ratio", "-1", /Invalid ratio "-1"/],
    ["ratio", "abc", /Invalid ratio/],
    ["max_logins", "1.5", /Invalid max_logins "1.5"/],
    ["admin", "maybe", /Invalid admin "maybe": use true or false/],
    ["expires", "2027-02-30", /Invalid expiry "2027-02-30"/],
    ["credits", "5X", /Invalid byte count "5X"/],
  ];
  for (const [field, value, re] of cases) {
    assert.throws(() => applyField(settings(), field, value), (e: unknown) => {
      assert.ok(e instanceof FieldError);
      assert.match(e.message, re);
      return true;
    });
  }
});

Deno.test("parseBytes: units are binary", () => {
  assert.equal(parseBytes("0"), 0);
  assert.equal(parseBytes("1K"), 1024);
  assert.equal(parseBytes("2 MiB"), 2 * 2 ** 20);
  assert.equal(parseBytes("1g"), 2 ** 30);
  assert.throws(() => parseBytes(""), FieldError);
  assert.throws(() => parseBytes("99999999999T"), FieldError);
});

Deno.test("formatUserLines: key: value lines, no hash", () => {
  const zero = { bytesUp: 0, bytesDown: 0, filesUp: 0, filesDown: 0 };
  const u: User = {
    ...settings(),
    name: "bob",
    primaryGroup: "users",
    created: 0,
    lastLogin: null,
    stats: { all: { ...zero, bytesUp: 5 }, day: zero, week: zero, month: zero },
  };
  const lines = formatUserLines(u);
  assert.equal(lines[0], "name: bob");
  assert.ok(lines.includes("last_login: never"));
  assert.ok(lines.includes("stats_all: bytes_up=5 bytes_down=0 files_up=0 files_down=0"));
  for (const l of lines) assert.match(l, /^[a-z_]+: /);
});
