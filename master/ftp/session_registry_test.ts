import assert from "node:assert/strict";
import { type RegisteredSession, SessionRegistry } from "./session_registry.ts";

function session(
  id: number,
  remoteHost: string,
  user: string | null,
  runningKind: RegisteredSession["runningKind"] = null,
): RegisteredSession {
  return { id, remoteHost, user: user === null ? null : { name: user }, runningKind };
}

Deno.test("SessionRegistry counts per address (mapped IPv4 too), per user, transfers", () => {
  const r = new SessionRegistry();
  const a = session(1, "127.0.0.1", "bob", "download");
  const b = session(2, "::ffff:127.0.0.1", "bob", "upload");
  const c = session(3, "10.0.0.1", "bob", "download");
  const d = session(4, "10.0.0.1", null);
  for (const s of [a, b, c, d]) r.add(s);
  assert.equal(r.fromAddress("127.0.0.1"), 2);
  assert.equal(r.fromAddress("10.0.0.1"), 2);
  assert.equal(r.ofUser("bob").length, 3);
  assert.equal(r.ofUser("bob", "127.0.0.1").length, 2);
  assert.equal(r.transfersOf("bob", "download"), 2);
  assert.equal(r.transfersOf("bob", "upload"), 1);
  r.delete(a);
  r.delete(a);
  assert.equal(r.fromAddress("127.0.0.1"), 1);
  assert.deepEqual(r.all().map((s) => s.id), [2, 3, 4]);
});
