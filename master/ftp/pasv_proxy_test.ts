import assert from "node:assert/strict";
import { PasvProxy } from "./pasv_proxy.ts";
import { deadline } from "../../shared/timers.ts";

Deno.test("the pasv proxy stops listening when the slave's port would have (no client came)", async () => {
  const target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const proxy = new PasvProxy(
    { hostname: "127.0.0.1", port },
    { host: "127.0.0.1", port: target.addr.port },
    { peer: null, label: "test", acceptMs: 50 },
  );
  try {
    // ends once the listener is closed by its deadline, with nobody connected
    await deadline(proxy.done, { ms: 5000, what: "the proxy to stop listening" });
    await assert.rejects(
      () => Deno.connect({ hostname: "127.0.0.1", port }),
      Deno.errors.ConnectionRefused,
    );
  } finally {
    proxy.close();
    target.close();
  }
});
