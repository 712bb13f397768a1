import assert from "node:assert/strict";
import { acceptLoop } from "./accept.ts";

/** A listener whose accept() plays a script: errors to throw or connections to return. */
function scripted(steps: (Error | Deno.Conn)[]): Deno.Listener {
  return {
    accept() {
      const step = steps.shift() ?? new Deno.errors.BadResource("closed");
      return step instanceof Error ? Promise.reject(step) : Promise.resolve(step);
    },
  } as unknown as Deno.Listener;
}

Deno.test("acceptLoop backs off on EMFILE and keeps accepting; ends when the listener closes", async () => {
  const conn = { rid: 1 } as unknown as Deno.Conn;
  const emfile = new Error("Too many open files (os error 24)");
  const got: Deno.Conn[] = [];
  await acceptLoop(scripted([emfile, emfile, conn, emfile, conn]), (c) => got.push(c), {
    signal: new AbortController().signal,
    what: "test",
    backoffMs: 1,
  });
  assert.deepEqual(got, [conn, conn]);
});

Deno.test("acceptLoop ends at once when aborted during a back-off", async () => {
  const ctl = new AbortController();
  const emfile = new Error("Too many open files (os error 24)");
  const loop = acceptLoop(scripted([emfile, emfile, emfile]), () => {}, {
    signal: ctl.signal,
    what: "test",
    backoffMs: 60_000,
  });
  ctl.abort();
  await loop;
});
