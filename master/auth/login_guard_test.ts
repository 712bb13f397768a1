import assert from "node:assert/strict";
import { AccountGuard, LoginGuard, unlockAccount } from "./login_guard.ts";

Deno.test("an address is banned while its last N failures lie within the window", () => {
  let now = 1_000_000;
  const g = new LoginGuard({ banAfter: 3, banMs: 60_000, now: () => now });
  assert.equal(g.fail("10.0.0.1"), false);
  now += 10_000;
  assert.equal(g.fail("10.0.0.1"), false);
  assert.equal(g.bannedFor("10.0.0.1"), 0);
  now += 10_000;
  assert.equal(g.fail("10.0.0.1"), true);
  assert.equal(g.bannedFor("10.0.0.1"), 40_000); // the oldest of the three leaves the window then
  assert.equal(g.bannedFor("10.0.0.2"), 0); // other addresses are not affected
  now += 40_000;
  assert.equal(g.bannedFor("10.0.0.1"), 0);
  assert.equal(g.fail("10.0.0.1"), true); // still two failures in the window: banned again
  assert.equal(g.bannedFor("10.0.0.1"), 10_000);
  now += 120_000;
  assert.equal(g.bannedFor("10.0.0.1"), 0);
  assert.equal(g.fail("10.0.0.1"), false); // old failures expired
});

Deno.test("failures spread wider than the window never ban", () => {
  let now = 0;
  const g = new LoginGuard({ banAfter: 2, banMs: 1000, now: () => now });
  for (let i = 0; i < 10; i++) {
    assert.equal(g.fail("a"), false);
    now += 1000;
  }
});

Deno.test("banAfter 0 never bans; memory is bounded; bad options are RangeErrors", () => {
  const off = new LoginGuard({ banAfter: 0, banMs: 1000 });
  for (let i = 0; i < 100; i++) assert.equal(off.fail("a"), false);
  assert.equal(off.bannedFor("a"), 0);
  const g = new LoginGuard({ banAfter: 1, banMs: 60_000, maxAddresses: 2 });
  g.fail("a");
  g.fail("b");
  g.fail("c"); // forgets "a", the least recently failing
  assert.equal(g.bannedFor("a"), 0);
  assert.ok(g.bannedFor("b") > 0 && g.bannedFor("c") > 0);
  assert.throws(() => new LoginGuard({ banAfter: -1, banMs: 1 }), RangeError);
  assert.throws(() => new LoginGuard({ banAfter: 1, banMs: 0 }), /banMs must be a positive/);
});

Deno.test("bans lists banned addresses; unban lifts a ban", () => {
  let now = 1000;
  const g = new LoginGuard({ banAfter: 2, banMs: 10_000, now: () => now });
  g.fail("10.0.0.1");
  g.fail("10.0.0.1");
  g.fail("10.0.0.2");
  now += 1000;
  assert.deepEqual(g.bans(), [{ address: "10.0.0.1", msLeft: 9000 }]);
  assert.equal(g.unban("10.0.0.1"), true);
  assert.equal(g.unban("10.0.0.1"), false);
  assert.equal(g.bannedFor("10.0.0.1"), 0);
  assert.deepEqual(g.bans(), []);
});

Deno.test("AccountGuard: one check at a time, locked after lockAfter failures, unlock via KV", async () => {
  const path = await Deno.makeTempFile();
  const kv = await Deno.openKv(path);
  try {
    const guard = new AccountGuard({
      lockAfter: 3,
      lockMs: 60_000,
      baseDelayMs: 1,
      maxDelayMs: 5,
      kv,
    });
    const signal = new AbortController().signal;
    let running = 0;
    let most = 0;
    let checks = 0;
    const wrong = async () => {
      checks++;
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 2));
      running--;
      return null;
    };
    const results = await Promise.all(
      Array.from({ length: 8 }, () => guard.attempt("victim", wrong, signal)),
    );
    assert.equal(checks, 3);
    assert.equal(most, 1, "checks of one account never overlap");
    assert.equal(results.filter((r) => r.lockedNow).length, 1);
    assert.equal(results.filter((r) => r.locked !== null).length, 5);
    // locked: even a right password is not checked
    const right = await guard.attempt("victim", () => Promise.resolve("ok"), signal);
    assert.deepEqual([right.result, right.locked !== null], [null, true]);
    // another account is not affected
    assert.equal((await guard.attempt("bob", () => Promise.resolve("ok"), signal)).result, "ok");
    // A new guard on the same KV (the master restarted) still enforces the lock.
    const restarted = new AccountGuard({ lockAfter: 3, lockMs: 60_000, maxDelayMs: 5, kv });
    let checked = false;
    const after = await restarted.attempt("victim", () => {
      checked = true;
      return Promise.resolve("ok");
    }, signal);
    assert.deepEqual([after.result, checked], [null, false]);
    assert.ok(after.locked !== null && after.locked.waitMs > 50_000, "the lock's own end");
    assert.equal(await unlockAccount(kv, "victim"), true);
    assert.equal((await guard.attempt("victim", () => Promise.resolve("ok"), signal)).result, "ok");
    const again = await restarted.attempt("victim", () => Promise.resolve("ok"), signal);
    assert.equal(again.result, "ok");
  } finally {
    kv.close();
    await Deno.remove(path).catch(() => {});
  }
});
