import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import type { SlaveConfig } from "../shared/config_types.ts";
import { FrameConn, masterProof, newNonce, proofsEqual, slaveProof } from "../shared/link.ts";
import {
  type AuthMsg,
  type FromSlave,
  MAX_REMERGE_BATCH,
  parseFromSlave,
  PROTOCOL_VERSION,
} from "../shared/protocol.ts";
import { createSelfSignedCert } from "../shared/tls/mod.ts";
import { loadDataCert } from "./data_cert.ts";
import { normalizeFingerprint } from "./dial.ts";
import { dirMarkers } from "./inventory.ts";
import { runSlave } from "./mod.ts";

const SECRET = "s3cret";
const NAME = "slave1";

/** Captures the slave's log records for the duration of a test. */
async function captureLogs(): Promise<{ records: LogRecord[] } & AsyncDisposable> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { capture: (r: LogRecord) => records.push(r) },
    loggers: [
      { category: ["drftpd", "slave"], sinks: ["capture"], lowestLevel: "debug" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
  });
  return { records, [Symbol.asyncDispose]: () => reset() };
}

/** The record's message as the default text formatter shows it (string values quoted). */
function text(r: LogRecord): string {
  return r.message.map((part, i) =>
    i % 2 === 1 && typeof part === "string" ? JSON.stringify(part) : String(part)
  ).join("");
}

/** A temp storage root removed on dispose, with the sibling folder of its TLS certificate. */
async function tempRoot(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "drftpd_slave_" });
  return {
    path,
    [Symbol.asyncDispose]: async () => {
      await Deno.remove(path, { recursive: true });
      await Deno.remove(`${path}.tls`, { recursive: true }).catch(() => {});
    },
  };
}

function slaveConfig(
  root: string,
  port: number,
  slave: Partial<SlaveConfig["slave"]> = {},
): SlaveConfig {
  return {
    file: null,
    slave: {
      name: NAME,
      master: { host: "127.0.0.1", port },
      secret: SECRET,
      root,
      listen_address: "127.0.0.1",
      public_address: "",
      passive_ports: { from: 0, to: 0 },
      tls: false,
      master_fingerprint: "",
      tls_cert: "",
      tls_key: "",
      data_engine: "native",
      stop_grace: 30,
      ...slave,
    },
    log: { level: "debug", format: "text" },
  };
}

/** The master's end of one link, checking every frame the slave sends against the protocol. */
class MasterEnd implements Disposable {
  link: FrameConn;
  constructor(conn: Deno.Conn) {
    this.link = new FrameConn(conn);
  }

  /** The next frame, validated; null at the end of the link. */
  async read(): Promise<FromSlave | null> {
    const raw = await this.link.read();
    return raw === null ? null : parseFromSlave(raw);
  }

  /** The next frame that is not a ping, disk or progress event. */
  async next(): Promise<FromSlave> {
    for (;;) {
      const msg = await this.read();
      assert.ok(msg !== null, "link closed unexpectedly");
      if (msg.type !== "ping" && msg.type !== "disk" && msg.type !== "progress") return msg;
    }
  }

  /** Sends hello and returns the slave's auth. */
  async hello(): Promise<AuthMsg & { masterNonce: string }> {
    const masterNonce = newNonce();
    await this.link.write({ type: "hello", v: PROTOCOL_VERSION, nonce: masterNonce });
    const auth = await this.read();
    assert.equal(auth?.type, "auth");
    return { ...(auth as AuthMsg), masterNonce };
  }

  /**
   * Runs the full handshake with the right secret, then asks for the inventory (a full one by
   * default; `request: null` sends no request).
   */
  async welcome(
    request: { since: number; paths?: string[] } | null = { since: 0 },
  ): Promise<void> {
    const auth = await this.hello();
    assert.equal(auth.name, NAME);
    assert.equal(auth.v, PROTOCOL_VERSION);
    assert.ok(proofsEqual(auth.mac, slaveProof(SECRET, auth.masterNonce, NAME)));
    await this.link.write({ type: "welcome", mac: masterProof(SECRET, auth.nonce, NAME) });
    if (request) await this.link.write({ type: "remerge_request", ...request });
  }

  [Symbol.dispose](): void {
    this.link.close();
  }
}

/**
 * A fake master listening on a free loopback port (plain TCP, or `listener`), and a slave run
 * against it (or against `dialPort`, e.g. a proxy in front of it).
 */
function setup(
  root: string,
  slave: Partial<SlaveConfig["slave"]> = {},
  listener: Deno.Listener = Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  dialPort = (listener.addr as Deno.NetAddr).port,
) {
  const stop = new AbortController();
  const running = runSlave(slaveConfig(root, dialPort, slave), stop.signal);
  return {
    listener,
    accept: async () => new MasterEnd(await listener.accept()),
    [Symbol.asyncDispose]: async () => {
      stop.abort();
      await running;
      listener.close();
    },
  };
}

/** The master's certificate in the TLS tests. */
const MASTER_PAIR = createSelfSignedCert("master.test");

function listenTls(): Deno.TlsListener {
  return Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: MASTER_PAIR.cert,
    key: MASTER_PAIR.key,
  });
}

/** A TCP proxy to `target` recording every byte that passes, both ways. */
function recordingProxy(target: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const chunks: Uint8Array[] = [];
  const conns: Deno.Conn[] = [];
  const pipes: Promise<void>[] = [];
  const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (let n = await from.read(buf); n !== null; n = await from.read(buf)) {
        chunks.push(buf.slice(0, n));
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
      await to.closeWrite();
    } catch {
      // one side went away
    }
  };
  const accepting = (async () => {
    for await (const a of listener) {
      const b = await Deno.connect({ hostname: "127.0.0.1", port: target });
      conns.push(a, b);
      pipes.push(pipe(a, b), pipe(b, a));
    }
  })();
  return {
    port: listener.addr.port,
    /** Everything recorded so far, as one latin1 string (one char per byte). */
    recorded: () => chunks.map((c) => String.fromCharCode(...c)).join(""),
    [Symbol.asyncDispose]: async () => {
      listener.close();
      await accepting;
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      await Promise.all(pipes);
    },
  };
}

Deno.test("runSlave logs a refusal at error level and dials again", async () => {
  await using logs = await captureLogs();
  await using root = await tempRoot();
  await using fake = setup(root.path);
  {
    using first = await fake.accept();
    const auth = await first.hello();
    assert.ok(!proofsEqual(auth.mac, slaveProof("another secret", auth.masterNonce, NAME)));
    await first.link.write({ type: "refused", reason: "wrong secret" });
  }
  using _second = await fake.accept(); // the slave retried after its backoff
  const refusal = logs.records.find((r) => r.level === "error" && /refused/.test(text(r)));
  assert.ok(refusal, "refusal logged at error level");
  assert.match(text(refusal), /wrong secret/);
});

Deno.test("runSlave does not trust a master that cannot prove the secret", async () => {
  await using logs = await captureLogs();
  await using root = await tempRoot();
  await using fake = setup(root.path);
  {
    using first = await fake.accept();
    const auth = await first.hello();
    await first.link.write({ type: "welcome", mac: masterProof("guess", auth.nonce, NAME) });
    assert.equal(await first.read(), null, "the slave hangs up");
  }
  using _second = await fake.accept();
  assert.ok(
    logs.records.some((r) =>
      r.level === "error" && /failed to prove the shared secret/.test(text(r))
    ),
  );
});

Deno.test("runSlave reports disk and inventory, then serves requests concurrently", async () => {
  await using logs = await captureLogs();
  await using root = await tempRoot();
  const expected = new Set<string>();
  const count = MAX_REMERGE_BATCH * 2 + 17;
  for (let d = 0; d < 5; d++) await Deno.mkdir(`${root.path}/dir${d}/sub`, { recursive: true });
  for (let i = 0; i < count; i++) {
    const path = `/dir${i % 5}/${i % 2 ? "sub/" : ""}f${i}.bin`;
    await Deno.writeTextFile(root.path + path, "x".repeat(i % 13));
    expected.add(path);
  }
  const payload = new TextEncoder().encode("checksum me");
  await Deno.writeFile(`${root.path}/known.bin`, payload);
  expected.add("/known.bin");

  await using fake = setup(root.path);
  using master = await fake.accept();
  await master.welcome();

  const disk = await master.read();
  assert.equal(disk?.type, "disk");
  if (disk?.type === "disk") assert.ok(disk.total > 0 && disk.free <= disk.total);

  const seen = new Set<string>();
  let batches = 0;
  for (;;) {
    const msg = await master.next();
    if (msg.type === "remerge_done") {
      assert.equal(msg.files, expected.size);
      break;
    }
    assert.equal(msg.type, "remerge");
    if (msg.type !== "remerge") break;
    assert.ok(msg.entries.length <= MAX_REMERGE_BATCH);
    batches++;
    for (const e of msg.entries) seen.add(e.path);
  }
  assert.equal(batches, 3);
  assert.deepEqual([...seen].sort(), [...expected].sort());
  assert.ok(
    logs.records.some((r) => /Connected to master 127\.0\.0\.1:\d+ as "slave1"/.test(text(r))),
  );

  // A passive upload that waits for its client must not block other requests.
  await master.link.write({ type: "listen", id: 1, xfer: "up1", peer: "127.0.0.1" });
  const listened = await master.next();
  assert.ok(listened.type === "reply" && listened.id === 1);
  const { port, host } = listened.data;
  assert.equal(host, "127.0.0.1");
  assert.ok(typeof port === "number");
  await master.link.write({
    type: "transfer",
    id: 2,
    xfer: "up1",
    dir: "receive",
    path: "/new/upload.bin",
    offset: 0,
    append: false,
    ascii: false,
    endpoint: { kind: "passive" },
    peer: "127.0.0.1",
    tls: "none",
  });

  await master.link.write({ type: "delete", id: 3, path: "/missing.bin" });
  const missing = await master.next();
  assert.equal(missing.type, "error");
  if (missing.type === "error") {
    assert.equal(missing.id, 3);
    assert.equal(missing.code, "not_found");
  }

  await master.link.write({ type: "checksum", id: 4, path: "/known.bin" });
  assert.deepEqual(await master.next(), {
    type: "reply",
    id: 4,
    data: { crc32: crc32(payload), size: payload.length },
  });

  const upload = new TextEncoder().encode("uploaded bytes");
  {
    using client = await Deno.connect({ hostname: "127.0.0.1", port });
    await client.write(upload);
  }
  const done = await master.next();
  assert.equal(done.type, "reply");
  if (done.type === "reply") {
    assert.equal(done.id, 2);
    assert.equal(done.data.crc32, crc32(upload));
    assert.equal(done.data.size, upload.length);
    assert.equal(done.data.crcWhole, true);
  }
  assert.deepEqual(await Deno.readFile(`${root.path}/new/upload.bin`), upload);

  // A fresh disk report follows the finished upload.
  for (;;) {
    const msg = await master.read();
    assert.ok(msg !== null);
    if (msg.type === "disk") break;
  }
});

Deno.test("runSlave waits for remerge_request, then lists what changed since, or subtrees", async () => {
  await using root = await tempRoot();
  for (const d of ["old/deep", "changed", "other"]) {
    await Deno.mkdir(`${root.path}/${d}`, { recursive: true });
    await Deno.writeTextFile(`${root.path}/${d}/f.bin`, "x");
  }
  await new Promise((r) => setTimeout(r, 50)); // file-system clocks are coarse
  const since = Date.now() + 2_000; // the slave forgives 2 s: this makes "now" the threshold
  await new Promise((r) => setTimeout(r, 50));
  await Deno.writeTextFile(`${root.path}/changed/new.bin`, "yy");

  await using fake = setup(root.path);
  using master = await fake.accept();
  await master.welcome(null);
  assert.equal((await master.read())?.type, "disk");
  const first = master.next();
  const early = await Promise.race([
    first.then(() => "frame"),
    new Promise((r) => setTimeout(() => r("nothing"), 300)),
  ]);
  assert.equal(early, "nothing", "no inventory before the master asks for it");

  const collect = async (pending?: Promise<FromSlave>) => {
    const files: string[] = [];
    const dirs: unknown[] = [];
    for (;;) {
      const msg = await (pending ?? master.next());
      pending = undefined;
      if (msg.type === "remerge_done") return { files: files.sort(), dirs, done: msg };
      assert.equal(msg.type, "remerge");
      if (msg.type !== "remerge") throw new Error("unreachable");
      files.push(...msg.entries.map((e) => e.path));
      dirs.push(...(msg.dirs ?? []));
    }
  };
  const before = Date.now();
  await master.link.write({ type: "remerge_request", since });
  const partial = await collect(first);
  assert.deepEqual(partial.files, ["/changed/f.bin", "/changed/new.bin"]);
  assert.deepEqual(partial.dirs, [{ path: "/changed", subdirs: [], complete: true }]);
  assert.equal(partial.done.files, 2);
  assert.ok(partial.done.scannedAt >= before - 1000 && partial.done.scannedAt <= Date.now());

  await master.link.write({ type: "remerge_request", since: 0, paths: ["/old", "/gone"] });
  const sub = await collect();
  assert.deepEqual(sub.files, ["/old/deep/f.bin"]);
  assert.deepEqual(sub.dirs, [
    { path: "/old", subdirs: ["deep"], complete: true },
    { path: "/old/deep", subdirs: [], complete: true },
  ]);
});

Deno.test("runSlave sends everything when since is ahead of its clock (the clock went back)", async () => {
  await using root = await tempRoot();
  await Deno.mkdir(`${root.path}/a`);
  await Deno.writeTextFile(`${root.path}/a/f.bin`, "x");
  await using fake = setup(root.path);
  using master = await fake.accept();
  await master.welcome({ since: Date.now() + 3_600_000 });
  const paths: string[] = [];
  for (;;) {
    const msg = await master.next();
    if (msg.type === "remerge_done") break;
    if (msg.type === "remerge") paths.push(...msg.entries.map((e) => e.path));
  }
  assert.deepEqual(paths, ["/a/f.bin"]);
});

Deno.test("dirMarkers splits a huge directory's subdirectories, the last piece complete", () => {
  const names = Array.from({ length: 2500 }, (_, i) => `sub-${i}`);
  const pieces = dirMarkers("/big", names);
  assert.deepEqual(pieces.map((p) => [p.subdirs.length, p.complete]), [
    [1000, false],
    [1000, false],
    [500, true],
  ]);
  assert.deepEqual(pieces.flatMap((p) => p.subdirs), names);
  const long = Array.from({ length: 900 }, (_, i) => `${"n".repeat(600)}${i}`);
  const byBytes = dirMarkers("/long", long, (v) => JSON.stringify(v).length);
  assert.ok(byBytes.length > 1 && byBytes.every((p) => JSON.stringify(p).length < 300_000));
  assert.deepEqual(dirMarkers("/leaf", []), [{ path: "/leaf", subdirs: [], complete: true }]);
  for (const p of [...pieces, ...byBytes]) {
    parseFromSlave({ type: "remerge", entries: [], dirs: [p] }); // each piece is a valid frame
  }
});

Deno.test("runSlave drops the link on an invalid frame and reconnects", async () => {
  await using logs = await captureLogs();
  await using root = await tempRoot();
  await using fake = setup(root.path);
  {
    using first = await fake.accept();
    await first.welcome();
    await first.link.write({ type: "delete", id: 1, path: "/x", extra: true });
    for (let msg = await first.read(); msg !== null; msg = await first.read()) {
      assert.notEqual(msg.type, "error", "no answer to an invalid frame");
    }
  }
  using second = await fake.accept();
  await second.welcome();
  assert.ok(logs.records.some((r) => r.level === "error" && /unknown field/.test(text(r))));
});

Deno.test("normalizeFingerprint accepts case, colons and a missing prefix", () => {
  const want = "sha256:" + "ab".repeat(32);
  assert.equal(normalizeFingerprint(want), want);
  assert.equal(normalizeFingerprint("SHA256:" + "AB:".repeat(31) + "AB"), want);
  assert.equal(normalizeFingerprint("ab".repeat(32)), want);
});

Deno.test("runSlave over TLS refuses a master whose certificate does not match the pin", async () => {
  await using logs = await captureLogs();
  await using root = await tempRoot();
  const pinned = createSelfSignedCert("impostor.test").fingerprint;
  await using fake = setup(root.path, { tls: true, master_fingerprint: pinned }, listenTls());
  for (let attempt = 0; attempt < 2; attempt++) { // the slave backs off and tries again
    using conn = await fake.listener.accept() as Deno.TlsConn;
    await conn.handshake();
    const link = new FrameConn(conn);
    await link.write({ type: "hello", v: PROTOCOL_VERSION, nonce: newNonce() }).catch(() => {});
    const n = await conn.read(new Uint8Array(64)).catch(() => null);
    assert.equal(n, null, "the slave sends nothing over a certificate it does not trust");
  }
  const mismatch = logs.records.find((r) =>
    r.level === "error" && text(r).includes(MASTER_PAIR.fingerprint)
  );
  assert.ok(mismatch, "the mismatch is logged at error level");
  assert.ok(text(mismatch).includes(pinned), text(mismatch));
});

Deno.test("runSlave over TLS without a pin connects and logs the master's fingerprint", async () => {
  await using logs = await captureLogs();
  await using root = await tempRoot();
  await Deno.writeTextFile(`${root.path}/a.txt`, "a");
  await using fake = setup(root.path, { tls: true }, listenTls());
  using master = await fake.accept();
  await master.welcome();
  await master.link.write({
    type: "tls_keys",
    ticketSecret: btoa(String.fromCharCode(...new Uint8Array(48).fill(1))),
  });
  const batch = await master.next();
  assert.ok(batch.type === "remerge" && batch.entries[0]?.path === "/a.txt");
  const done = await master.next();
  assert.ok(done.type === "remerge_done" && done.files === 1);
  const accepted = logs.records.find((r) => /Accepted master certificate/.test(text(r)));
  assert.ok(accepted && accepted.level === "info");
  assert.ok(text(accepted).includes(MASTER_PAIR.fingerprint));
  assert.match(text(accepted), /pin it with master_fingerprint/);
  // The self-signed data certificate lives next to the root, not in it (the inventory above).
  assert.ok((await Deno.stat(`${root.path}.tls/cert.pem`)).isFile);

  // A tls_keys secret that is not 48 bytes drops the link.
  await master.link.write({ type: "tls_keys", ticketSecret: btoa("short") });
  for (let msg = await master.read(); msg !== null; msg = await master.read()) {
    assert.notEqual(msg.type, "error");
  }
});

Deno.test("the TLS link hides names and paths from the wire", async () => {
  await using logs = await captureLogs();
  await using root = await tempRoot();
  const dir = "capture-folder-name";
  const file = "very-secret-release-name.bin";
  await Deno.mkdir(`${root.path}/${dir}`);
  await Deno.writeTextFile(`${root.path}/${dir}/${file}`, "content");
  const master = listenTls();
  await using proxy = recordingProxy(master.addr.port);
  await using fake = setup(
    root.path,
    { tls: true, master_fingerprint: MASTER_PAIR.fingerprint },
    master,
    proxy.port,
  );
  using end = await fake.accept();
  await end.welcome(); // the slave's name arrived in "auth"
  const batch = await end.next();
  assert.ok(batch.type === "remerge");
  assert.deepEqual(batch.entries.map((e) => e.path), [`/${dir}/${file}`]);
  assert.equal((await end.next()).type, "remerge_done");
  await end.link.write({ type: "checksum", id: 1, path: `/${dir}/${file}` });
  assert.equal((await end.next()).type, "reply");

  const wire = proxy.recorded();
  assert.ok(wire.length > 200, "the proxy saw the traffic");
  for (const secret of [NAME, dir, file, "remerge", SECRET]) {
    assert.ok(!wire.includes(secret), `"${secret}" is not on the wire`);
  }
  assert.ok(!logs.records.some((r) => /Accepted master certificate/.test(text(r))), "pinned");
});

Deno.test("loadDataCert reads tls_cert/tls_key, naming the file it cannot use", async () => {
  await using root = await tempRoot();
  const pair = createSelfSignedCert("data.test");
  const other = createSelfSignedCert("other.test");
  const certPath = `${root.path}.cert.pem`;
  const keyPath = `${root.path}.key.pem`;
  const otherKey = `${root.path}.other.pem`;
  try {
    await Deno.writeTextFile(certPath, pair.cert);
    await Deno.writeTextFile(keyPath, pair.key);
    await Deno.writeTextFile(otherKey, other.key);
    const config = (slave: Partial<SlaveConfig["slave"]>) => slaveConfig(root.path, 1, slave);
    const loaded = await loadDataCert(config({ tls_cert: certPath, tls_key: keyPath }));
    assert.equal(loaded.fingerprint, pair.fingerprint);
    await assert.rejects(
      loadDataCert(config({ tls_cert: `${root.path}/missing.pem`, tls_key: keyPath })),
      (e: Error) => e.message.includes(`${root.path}/missing.pem`),
    );
    await assert.rejects(
      loadDataCert(config({ tls_cert: certPath, tls_key: otherKey })),
      (e: Error) => e.message.includes(otherKey) && /does not match/.test(e.message),
    );
    await assert.rejects(loadDataCert(config({ tls_cert: certPath })), /both tls_cert and tls_key/);
    // Without files: a self-signed pair in "<root>.tls", the same one on the next start.
    const first = await loadDataCert(config({}));
    assert.equal((await loadDataCert(config({}))).fingerprint, first.fingerprint);
    assert.deepEqual([...Deno.readDirSync(root.path)], []);
  } finally {
    for (const p of [certPath, keyPath, otherKey]) await Deno.remove(p).catch(() => {});
  }
});
