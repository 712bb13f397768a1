import assert from "node:assert/strict";
import { SiteMetrics } from "../metrics.ts";
import { KvFilelist } from "../filelist/kv_filelist.ts";
import type { SlaveStatus } from "../slaves/registry.ts";
import { createHttpHandler, type SiteView } from "./server.ts";
import { parsePrometheus, prometheusPython } from "../../testing/prometheus.ts";

function fakeView(overrides: Partial<SiteView> = {}): SiteView {
  const slave: SlaveStatus = {
    name: "slave1",
    state: "online",
    remerging: false,
    unresponsive: false,
    address: "127.0.0.1",
    free: 1000,
    total: 4000,
    activeTransfers: 0,
    lastSeen: 0,
  };
  return {
    metrics: new SiteMetrics(),
    slaves: () => Promise.resolve([slave]),
    checkFilelist: () => Promise.resolve(),
    ftpListening: () => true,
    filelistEntries: () => Promise.resolve(7),
    pendingOps: () => Promise.resolve({ slave1: 2 }),
    longWork: () => [],
    replication: () => ({ queued: 3, running: 1, copied: 5, failed: 2 }),
    verifyAdmin: (u, p) => Promise.resolve(u === "root" && p === "pw"),
    ...overrides,
  };
}

const get = (path: string, headers: Record<string, string> = {}) =>
  new Request(`http://127.0.0.1${path}`, { headers });

Deno.test("/healthz: 200 while FTP and the filelist work, 503 naming what does not", async () => {
  const ok = await createHttpHandler(fakeView(), { requireAuth: false })(get("/healthz"));
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), "ok\n");
  const broken = fakeView({
    checkFilelist: () => Promise.reject(new Error("database is locked")),
    ftpListening: () => false,
  });
  const r = await createHttpHandler(broken, { requireAuth: false })(get("/healthz"));
  assert.equal(r.status, 503);
  assert.equal(
    await r.text(),
    "unhealthy: FTP listener is closed; filelist cannot be read: database is locked\n",
  );
});

Deno.test("off loopback every request needs an admin's basic auth", async () => {
  const handler = createHttpHandler(fakeView(), { requireAuth: true });
  const none = await handler(get("/metrics"));
  assert.equal(none.status, 401);
  assert.match(none.headers.get("www-authenticate")!, /^Basic realm="drftpd"/);
  await none.body?.cancel();
  const wrong = await handler(get("/healthz", { authorization: `Basic ${btoa("root:nope")}` }));
  assert.equal(wrong.status, 401);
  await wrong.body?.cancel();
  const bad = await handler(get("/healthz", { authorization: "Basic %%%" }));
  assert.equal(bad.status, 401);
  await bad.body?.cancel();
  const right = await handler(get("/healthz", { authorization: `Basic ${btoa("root:pw")}` }));
  assert.equal(right.status, 200);
  await right.body?.cancel();
});

Deno.test("/ serves the embedded page; unknown paths 404; POST 405", async () => {
  const handler = createHttpHandler(fakeView(), { requireAuth: false });
  const page = await handler(get("/"));
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type")!, /^text\/html/);
  assert.match(await page.text(), /new EventSource\("events"\)/);
  const missing = await handler(get("/nope"));
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
  const post = await handler(new Request("http://127.0.0.1/metrics", { method: "POST" }));
  assert.equal(post.status, 405);
  await post.body?.cancel();
});

Deno.test({
  name: "/metrics counts transfers in the right series and parses with prometheus_client",
  ignore: prometheusPython() === null,
  async fn() {
    const view = fakeView();
    const up = view.metrics.startTransfer({
      user: "u",
      remoteHost: "127.0.0.1",
      path: "/a",
      direction: "upload",
      route: "direct",
      slave: "slave1",
      ascii: false,
      size: null,
    });
    up.progress(10);
    up.end("complete", 100);
    view.metrics.login("ok");
    view.metrics.login("failed");
    const r = await createHttpHandler(view, { requireAuth: false })(get("/metrics"));
    assert.match(r.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    const samples = await parsePrometheus(await r.text());
    const value = (name: string, labels: Record<string, string> = {}) =>
      samples.find((s) =>
        s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
      )?.value;
    assert.equal(
      value("drftpd_transfers_total", { direction: "upload", result: "complete", path: "direct" }),
      1,
    );
    assert.equal(
      value("drftpd_transfer_bytes_total", {
        direction: "upload",
        result: "complete",
        path: "direct",
      }),
      100,
    );
    assert.equal(value("drftpd_logins_total", { result: "failed" }), 1);
    assert.equal(value("drftpd_slave_online", { slave: "slave1" }), 1);
    assert.equal(value("drftpd_slave_free_bytes", { slave: "slave1" }), 1000);
    assert.equal(value("drftpd_slave_pending_operations", { slave: "slave1" }), 2);
    assert.equal(value("drftpd_filelist_entries"), 7);
    assert.equal(value("drftpd_replication_queue"), 3);
    assert.equal(value("drftpd_replication_running"), 1);
    assert.equal(value("drftpd_replication_copies_total", { result: "complete" }), 5);
    assert.equal(value("drftpd_replication_copies_total", { result: "failed" }), 2);
    assert.equal(value("drftpd_sessions"), 0);
  },
});

Deno.test("/healthz is 503 when the real filelist's KV cannot be read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const kv = await Deno.openKv(`${dir}/filelist.kv`);
    const filelist = new KvFilelist(kv);
    const view = fakeView({ checkFilelist: () => filelist.checkReadable() });
    const handler = createHttpHandler(view, { requireAuth: false });
    const ok = await handler(get("/healthz"));
    assert.equal(ok.status, 200, await ok.text());
    kv.close();
    const r = await handler(get("/healthz"));
    assert.equal(r.status, 503);
    assert.match(await r.text(), /^unhealthy: filelist cannot be read: /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
