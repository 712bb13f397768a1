import assert from "node:assert/strict";
import { UserStore } from "./users.ts";

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
    assert.deepEqual(u, {
      name: "alice",
      groups: ["staff", "users"],
      admin: true,
      primaryGroup: "staff",
    });
    assert.deepEqual(await users.get("alice"), u);
    assert.deepEqual(await users.verify("alice", "s3cret pass"), u);
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
    assert.deepEqual(u, { name: "bob", groups: ["users"], admin: false, primaryGroup: "users" });
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

Deno.test("add replaces an existing user of the same name", async () => {
  await withStore(async (users) => {
    await users.add("erin", "old", { admin: true });
    await users.add("erin", "new", { groups: ["g1"] });
    assert.equal(await users.verify("erin", "old"), null);
    assert.deepEqual(await users.verify("erin", "new"), {
      name: "erin",
      groups: ["g1"],
      admin: false,
      primaryGroup: "g1",
    });
    assert.equal((await users.list()).length, 1);
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
    assert.ok(ticks > 5, `timer never ran while hashing (${ticks})`);
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
    await other.add("alice", "second"); // new password hash: the memory is stale
    assert.equal(await users.verify("alice", "first"), null);
    assert.ok(await users.verify("alice", "second"));
    await other.remove("alice");
    assert.equal(await users.verify("alice", "second"), null);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
