import assert from "node:assert/strict";
import { evictionFor } from "./admission.ts";

const at = (id: string, remoteHost: string) => ({ id, remoteHost });

Deno.test("evictionFor: the newcomer's own address gives up its oldest first", () => {
  const waiting = [at("h1", "10.0.0.1"), at("f1", "10.0.0.9"), at("f2", "10.0.0.9")];
  assert.equal(evictionFor(waiting, "10.0.0.9")?.id, "f1");
  // IPv4-mapped spellings are the same address
  assert.equal(evictionFor(waiting, "::ffff:10.0.0.9")?.id, "f1");
});

Deno.test("evictionFor: otherwise the address holding the most, its oldest; ties: the oldest", () => {
  const waiting = [
    at("h1", "10.0.0.1"),
    at("a1", "10.0.0.7"),
    at("h2", "10.0.0.2"),
    at("b1", "10.0.0.8"),
    at("a2", "10.0.0.7"),
    at("b2", "10.0.0.8"),
    at("b3", "10.0.0.8"),
  ];
  assert.equal(evictionFor(waiting, "10.0.0.5")?.id, "b1");
  assert.equal(evictionFor([at("h1", "10.0.0.1"), at("h2", "10.0.0.2")], "10.0.0.5")?.id, "h1");
  assert.equal(evictionFor([], "10.0.0.5"), null);
});
