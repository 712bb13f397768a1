import assert from "node:assert/strict";
import { loginRefusal, periodIds, UserExistsError, UserStore } from "./users.ts";

async function withStore(fn: (users: UserStore, kv: Deno.Kv) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "drftpd_users_" });
  const kv = await Deno.openKv(`${dir}/t.kv`);
  try {
    await fn(new UserStore(kv), kv);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("add, get and verify with the right and a wrong password", async () => {
  await withStore(async (users) => {
    const u = await users.add("alice", "s3cret pass", { groups: ["staff", "users"], admin: true });
    assert.equal(u.name, "alice");
    assert.deepEqual(u.groups, ["staff", "users"]);
    assert.equal(u.admin, true);
    assert.equal(u.primaryGroup, "staff");
    assert.deepEqual(await users.get("alice"), u);
    assert.deepEqual((await users.verify("alice", "s3cret pass"))?.name, "alice");
    assert.equal(await users.verify("alice", "s3cret pasS"), null);
    assert.equal(await users.verify("alice", ""), null);
    assert.equal(await users.verify("bob", "s3cret pass"), null);
    assert.equal(await users.verify("../../etc", "x"), null); // never throws on USER input
    assert.equal(await users.get("bob"), null);
  });
});

Deno.test("defaults: groups [users], not admin", async () => {
  await withStore(async (users) => {
    const u = await users.add("bob", "pw");
    assert.deepEqual(u.groups, ["users"]);
    assert.equal(u.admin, false);
    assert.equal(u.primaryGroup, "users");
    assert.equal(u.ratio, 0);
    assert.equal(u.disabled, false);
    assert.deepEqual(u.masks, []);
    assert.deepEqual((await users.listGroups()).map((g) => g.name), ["users"]);
    assert.deepEqual((await users.add("bob2", "pw", { groups: [] })).groups, ["users"]);
  });
});

Deno.test("the stored record holds a salted scrypt hash, never the password", async () => {
  await withStore(async (users, kv) => {
    await users.add("carol", "correct horse battery staple");
    await users.add("dave", "correct horse battery staple");
    const raw = await kv.get<Record<string, unknown>>(["user", "carol"]);
    const text = JSON.stringify(raw.value);
    assert.ok(!text.includes("correct horse"), text);
    assert.ok(!text.includes(btoa("correct horse battery staple")), text);
    const pw = raw.value!.password as Record<string, unknown>;
    assert.equal(pw.alg, "scrypt");
    assert.equal(pw.N, 16384);
    assert.equal(pw.r, 8);
    assert.equal(pw.p, 1);
    const other = (await kv.get<Record<string, unknown>>(["user", "dave"])).value!
      .password as Record<
        string,
        unknown
      >;
    assert.notEqual(pw.salt, other.salt);
    assert.notEqual(pw.hash, other.hash);
  });
});

Deno.test("add refuses an existing name, naming passwd and change; passwd replaces the hash", async () => {
  await withStore(async (users) => {
    await users.add("erin", "old", { admin: true });
    await assert.rejects(users.add("erin", "new", { groups: ["g1"] }), (e: unknown) => {
      assert.ok(e instanceof UserExistsError);
      assert.match(e.message, /user passwd/);
      assert.match(e.message, /user change/);
      return true;
    });
    assert.equal((await users.get("erin"))!.admin, true); // untouched
    await users.setPassword("erin", "new");
    assert.equal(await users.verify("erin", "old"), null);
    assert.ok(await users.verify("erin", "new"));
    assert.equal((await users.list()).length, 1);
  });
});

Deno.test("change: settings checked and stored; new groups are created", async () => {
  await withStore(async (users, kv) => {
    await users.add("fay", "pw");
    const u = await users.change("fay", (s) => {
      s.groups = ["staff", "users"];
      s.masks.push("*@10.0.0.0/8");
      s.ratio = 3;
      s.maxLogins = 2;
    });
    assert.deepEqual(u.groups, ["staff", "users"]);
    assert.equal(u.ratio, 3);
    assert.deepEqual((await users.get("fay"))!.masks, ["*@10.0.0.0/8"]);
    assert.ok(await users.getGroup("staff"));
    await assert.rejects(users.change("fay", (s) => (s.ratio = -1)), TypeError);
    await assert.rejects(users.change("fay", (s) => s.masks.push("bad mask")), TypeError);
    await assert.rejects(users.change("nobody", () => {}), /No such user/);
    // one small value per user
    const raw = await kv.get(["user", "fay"]);
    assert.ok(JSON.stringify(raw.value).length < 4096);
  });
});

Deno.test("transfers: stats per period, credits earned by ratio and spent", async () => {
  const dir = await Deno.makeTempDir({ prefix: "drftpd_users_" });
  const kv = await Deno.openKv(`${dir}/t.kv`);
  try {
    let now = Date.UTC(2026, 11, 6, 12); // Sunday
    const users = new UserStore(kv, { now: () => now });
    await users.add("gus", "pw", { ratio: 3 });
    await users.recordTransfer("gus", "up", 1000, true);
    await users.recordTransfer("gus", "down", 400, false);
    let u = (await users.get("gus"))!;
    assert.equal(u.credits, 2600);
    assert.deepEqual(u.stats.day, { bytesUp: 1000, bytesDown: 400, filesUp: 1, filesDown: 0 });
    assert.deepEqual(u.stats.all, u.stats.day);
    now += 86_400_000; // Monday: new day and new ISO week, same month
    u = (await users.get("gus"))!;
    assert.deepEqual(u.stats.day, { bytesUp: 0, bytesDown: 0, filesUp: 0, filesDown: 0 });
    assert.deepEqual(u.stats.week, u.stats.day);
    assert.equal(u.stats.month.bytesUp, 1000);
    assert.equal(u.stats.all.bytesUp, 1000);
    await users.recordTransfer("gus", "down", 10_000, true);
    assert.equal((await users.get("gus"))!.credits, 0); // never below zero
    await users.recordTransfer("nobody", "up", 1, true); // removed meanwhile: ignored
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("periodIds: UTC day, ISO week (year of its Thursday), month", () => {
  assert.deepEqual(periodIds(Date.UTC(2026, 11, 6)), {
    day: "2026-12-06",
    week: "2026-W49",
    month: "2026-12",
  });
  assert.equal(periodIds(Date.UTC(2027, 0, 1)).week, "2026-W53");
  assert.equal(periodIds(Date.UTC(2024, 11, 30)).week, "2025-W01");
});

Deno.test("loginRefusal: disabled, expired, outside the masks", async () => {
  await withStore(async (users) => {
    const u = await users.add("hal", "pw", { masks: ["*@10.1.2.*"] });
    const now = Date.UTC(2026, 0, 1);
    assert.equal(loginRefusal(u, "10.1.2.3", now), null);
    assert.equal(loginRefusal(u, "127.0.0.1", now), "Login not allowed from this address");
    assert.equal(loginRefusal({ ...u, disabled: true }, "10.1.2.3", now), "Account disabled");
    assert.equal(loginRefusal({ ...u, expires: now }, "10.1.2.3", now), "Account expired");
    assert.equal(loginRefusal({ ...u, expires: now + 1 }, "10.1.2.3", now), null);
  });
});

Deno.test("groups: add, list, show members, refuse removing a group in use", async () => {
  await withStore(async (users) => {
    await users.addGroup("staff", "the staff");
    await assert.rejects(users.addGroup("staff"), /already exists/);
    await users.add("ian", "pw", { groups: ["staff"] });
    assert.deepEqual((await users.members("staff")).map((u) => u.name), ["ian"]);
    await assert.rejects(users.removeGroup("staff"), /ian/);
    await users.remove("ian");
    assert.equal(await users.removeGroup("staff"), true);
    assert.equal(await users.removeGroup("staff"), false);
  });
});

Deno.test("list and remove", async () => {
  await withStore(async (users) => {
    await users.add("zed", "pw");
    await users.add("amy", "pw");
    assert.deepEqual((await users.list()).map((u) => u.name), ["amy", "zed"]);
    assert.equal(await users.remove("amy"), true);
    assert.equal(await users.remove("amy"), false);
    assert.deepEqual((await users.list()).map((u) => u.name), ["zed"]);
    assert.equal(await users.verify("amy", "pw"), null);
  });
});

Deno.test("invalid names, groups and passwords are TypeErrors naming the value", async () => {
  await withStore(async (users) => {
    await assert.rejects(users.add("bad name", "pw"), (e: unknown) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /"bad name"/);
      return true;
    });
    await assert.rejects(users.add("", "pw"), TypeError);
    await assert.rejects(users.add("x".repeat(33), "pw"), TypeError);
    await assert.rejects(users.add("ok", "pw", { groups: ["no/slash"] }), /"no\/slash"/);
    await assert.rejects(users.add("ok", ""), TypeError);
    assert.deepEqual(await users.list(), []);
  });
});

Deno.test("hashing does not block the event loop", async () => {
  await withStore(async (users) => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      await Promise.all([users.add("t1", "pw"), users.add("t2", "pw"), users.add("t3", "pw")]);
    } finally {
      clearInterval(timer);
    }
    // Synchronous hashing would finish inside add() and resolve before any timer could run;
    // one tick is proof enough (more would only measure how loaded the machine is).
    assert.ok(ticks > 0, `timer never ran while hashing (${ticks})`);
  });
});

Deno.test("a verified login is remembered for 10 minutes; other passwords still cost scrypt", async () => {
  const dir = await Deno.makeTempDir({ prefix: "drftpd_users_" });
  const kv = await Deno.openKv(`${dir}/t.kv`);
  try {
    let now = 1_000_000;
    const users = new UserStore(kv, { now: () => now });
    const other = new UserStore(kv); // e.g. `drftpd user add` in another process
    await other.add("alice", "first");
    assert.ok(await users.verify("alice", "first"));
    assert.equal(users.scryptRuns, 1);
    assert.ok(await users.verify("alice", "first"));
    assert.ok(await users.verify("alice", "first"));
    assert.equal(users.scryptRuns, 1); // remembered
    assert.equal(await users.verify("alice", "First"), null);
    assert.equal(users.scryptRuns, 2); // a wrong password is hashed like always
    assert.ok(await users.verify("alice", "first")); // and does not spoil the memory
    assert.equal(users.scryptRuns, 2);
    now += 10 * 60_000;
    assert.ok(await users.verify("alice", "first"));
    assert.equal(users.scryptRuns, 3); // expired: checked again, remembered again
    await other.setPassword("alice", "second"); // new password hash: the memory is stale
    assert.equal(await users.verify("alice", "first"), null);
    assert.ok(await users.verify("alice", "second"));
    await other.remove("alice");
    assert.equal(await users.verify("alice", "second"), null);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("retire moves a user aside (no login), restore brings it back as it was", async () => {
  await withStore(async (users) => {
    await users.add("jo", "pw", { ratio: 2 });
    assert.equal(await users.retire("jo"), true);
    assert.equal(await users.retire("jo"), false);
    assert.equal(await users.verify("jo", "pw"), null);
    assert.equal(await users.get("jo"), null);
    const back = await users.restore("jo");
    assert.equal(back.ratio, 2);
    assert.ok(await users.verify("jo", "pw"));
    await assert.rejects(users.restore("jo"), /No deleted user "jo"/);
    await users.retire("jo");
    await users.add("jo", "other");
    await assert.rejects(users.restore("jo"), /already exists/);
  });
});

Deno.test("many sessions of one user writing at once: every login and transfer is recorded", async () => {
  await withStore(async (users) => {
    await users.add("para", "pw");
    // A client with 30 parallel connections: logins and finished uploads land together.
    await Promise.all(
      Array.from<unknown, Promise<unknown>>({ length: 30 }, () => users.touchLogin("para")).concat(
        Array.from({ length: 30 }, () => users.recordTransfer("para", "up", 10, true)),
      ),
    );
    const u = await users.get("para");
    assert.ok(u !== null && u.lastLogin !== null);
    assert.equal(u.stats.all.bytesUp, 300);
    assert.equal(u.stats.all.filesUp, 30);
  });
});
