import assert from "node:assert/strict";
import { poll } from "../testing/wait.ts";
import { crc32 } from "node:zlib";
import type { TransferReq } from "../shared/protocol.ts";
import { SlaveError } from "./_errors.ts";
import { Storage } from "./storage.ts";
import { announcedHost, TransferManager, type TransferOptions } from "./transfer.ts";
import {
  connectTlsClient,
  createSelfSignedCert,
  loadOpenSsl,
  type OpenSsl,
  upgradeToTlsServer,
} from "../shared/tls/mod.ts";
import { concat, readAll, writeAll } from "../shared/bytes.ts";

/** A temp folder (symlink-free path) removed on dispose. */
async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.realPath(await Deno.makeTempDir({ prefix: "drftpd_transfer_" }));
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/** A manager on loopback whose passive "range" is port 0 (the OS picks a free port). */
function manager(root: string, options: TransferOptions = {}): TransferManager {
  return new TransferManager(new Storage(root), {
    listenAddress: "127.0.0.1",
    publicHost: "127.0.0.1",
    passivePorts: { from: 0, to: 0 },
  }, options);
}

function request(fields: Partial<TransferReq> & Pick<TransferReq, "xfer" | "dir" | "path">) {
  return {
    type: "transfer",
    id: 1,
    offset: 0,
    append: false,
    ascii: false,
    endpoint: { kind: "passive" },
    peer: "127.0.0.1",
    tls: "none",
    ...fields,
  } as TransferReq;
}

function pattern(size: number, seed = 1): Uint8Array {
  const data = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  return data;
}

function hasCode(code: string) {
  return (e: unknown) => {
    assert.ok(e instanceof SlaveError, `expected SlaveError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

Deno.test("announcedHost prefers public_address, then a concrete listen_address, then the link", () => {
  const base = {
    name: "s",
    master: { host: "127.0.0.1", port: 1099 },
    secret: "x",
    root: "/tmp",
    passive_ports: { from: 1, to: 2 },
    tls: true,
    master_fingerprint: "",
    tls_cert: "",
    tls_key: "",
    data_engine: "native" as const,
    stop_grace: 30,
  };
  assert.equal(
    announcedHost(
      { ...base, listen_address: "0.0.0.0", public_address: "203.0.113.5" },
      "10.0.0.1",
    ),
    "203.0.113.5",
  );
  assert.equal(
    announcedHost({ ...base, listen_address: "192.0.2.7", public_address: "" }, "10.0.0.1"),
    "192.0.2.7",
  );
  assert.equal(
    announcedHost({ ...base, listen_address: "0.0.0.0", public_address: "" }, "10.0.0.1"),
    "10.0.0.1",
  );
  assert.equal(announcedHost({ ...base, listen_address: "::", public_address: "" }, "::1"), "::1");
});

Deno.test("passive send from an offset streams the rest of the file with its CRC32", async () => {
  await using root = await tempDir();
  const data = pattern(1_000_003);
  await Deno.writeFile(`${root.path}/movie.bin`, data);
  using m = manager(root.path);
  const { port, host } = m.listen("x1", "127.0.0.1");
  assert.equal(host, "127.0.0.1");
  const offset = 12_345;
  const result = m.transfer(request({ xfer: "x1", dir: "send", path: "/movie.bin", offset }));
  using client = await Deno.connect({ hostname: "127.0.0.1", port });
  const got = await readAll(client);
  const expected = data.subarray(offset);
  assert.deepEqual(got, expected);
  const r = await result;
  assert.equal(r.bytes, expected.length);
  assert.equal(r.size, data.length);
  assert.deepEqual([r.crc32, r.crcWhole], [0, false], "sends compute no CRC32");
  assert.equal(m.pendingListeners, 0);
});

Deno.test("active send of a whole file connects out and reports no CRC32", async () => {
  await using root = await tempDir();
  const data = pattern(300_000, 7);
  await Deno.mkdir(`${root.path}/dir`);
  await Deno.writeFile(`${root.path}/dir/a.bin`, data);
  using m = manager(root.path);
  using server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const result = m.transfer(request({
    xfer: "x2",
    dir: "send",
    path: "/dir/a.bin",
    endpoint: { kind: "active", host: "127.0.0.1", port: server.addr.port },
  }));
  using conn = await server.accept();
  assert.deepEqual(await readAll(conn), data);
  const r = await result;
  assert.deepEqual([r.bytes, r.size, r.crc32, r.crcWhole], [data.length, data.length, 0, false]);
});

Deno.test("receive of a new file creates parents and returns the whole-file CRC32", async () => {
  await using root = await tempDir();
  using m = manager(root.path);
  const data = pattern(777_777, 3);
  const { port } = m.listen("r1", "127.0.0.1");
  // The client connects and uploads before the master's transfer order arrives.
  {
    using client = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(client, data);
  }
  const r = await m.transfer(request({ xfer: "r1", dir: "receive", path: "/new/dir/up.bin" }));
  assert.deepEqual(await Deno.readFile(`${root.path}/new/dir/up.bin`), data);
  assert.deepEqual([r.bytes, r.size, r.crc32, r.crcWhole], [
    data.length,
    data.length,
    crc32(data),
    true,
  ]);
  const st = await Deno.stat(`${root.path}/new/dir/up.bin`);
  assert.equal(r.mtime, st.mtime?.getTime());
});

Deno.test("receive at an offset truncates there and writes after it", async () => {
  await using root = await tempDir();
  const old = pattern(1000, 5);
  await Deno.writeFile(`${root.path}/resume.bin`, old);
  using m = manager(root.path);
  const tail = pattern(500, 9);
  const { port } = m.listen("r2", "127.0.0.1");
  const result = m.transfer(
    request({ xfer: "r2", dir: "receive", path: "/resume.bin", offset: 600 }),
  );
  {
    using client = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(client, tail);
  }
  const r = await result;
  const expected = new Uint8Array(1100);
  expected.set(old.subarray(0, 600));
  expected.set(tail, 600);
  assert.deepEqual(await Deno.readFile(`${root.path}/resume.bin`), expected);
  assert.deepEqual([r.bytes, r.size, r.crc32, r.crcWhole], [500, 1100, crc32(tail), false]);
});

Deno.test("receive with append writes at the end of the file", async () => {
  await using root = await tempDir();
  const old = pattern(100, 11);
  await Deno.writeFile(`${root.path}/log.bin`, old);
  using m = manager(root.path);
  const more = pattern(50, 12);
  using server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const result = m.transfer(request({
    xfer: "r3",
    dir: "receive",
    path: "/log.bin",
    append: true,
    endpoint: { kind: "active", host: "127.0.0.1", port: server.addr.port },
  }));
  {
    using conn = await server.accept();
    await writeAll(conn, more);
  }
  const r = await result;
  const expected = new Uint8Array(150);
  expected.set(old);
  expected.set(more, 100);
  assert.deepEqual(await Deno.readFile(`${root.path}/log.bin`), expected);
  assert.deepEqual([r.bytes, r.size, r.crc32, r.crcWhole], [50, 150, crc32(more), false]);
});

Deno.test("receive refuses an offset beyond the end and a target outside the root", async () => {
  await using root = await tempDir();
  await using outside = await tempDir();
  await Deno.writeFile(`${root.path}/short.bin`, pattern(10));
  await Deno.symlink(outside.path, `${root.path}/out`);
  using m = manager(root.path);
  m.listen("r4", null);
  await assert.rejects(
    m.transfer(request({ xfer: "r4", dir: "receive", path: "/short.bin", offset: 11 })),
    hasCode("bad_request"),
  );
  m.listen("r5", null);
  await assert.rejects(
    m.transfer(request({ xfer: "r5", dir: "receive", path: "/out/evil.bin" })),
    hasCode("outside_root"),
  );
  assert.equal(m.pendingListeners, 0, "failed transfers close their listeners");
  assert.deepEqual([...Deno.readDirSync(outside.path)], []);
});

Deno.test("send reports a missing file, a folder, and a path through an outside symlink", async () => {
  await using root = await tempDir();
  await using outside = await tempDir();
  await Deno.writeTextFile(`${outside.path}/secret`, "s");
  await Deno.symlink(`${outside.path}/secret`, `${root.path}/secret`);
  await Deno.mkdir(`${root.path}/folder`);
  using m = manager(root.path);
  for (
    const [path, code] of [["/nope.bin", "not_found"], ["/folder", "not_a_file"], [
      "/secret",
      "outside_root",
    ]]
  ) {
    m.listen("s", "127.0.0.1");
    await assert.rejects(
      m.transfer(request({ xfer: "s", dir: "send", path: path! })),
      hasCode(code!),
    );
  }
  assert.equal(m.pendingListeners, 0);
});

Deno.test("a passive listener closes connections from the wrong peer and times out", async () => {
  await using root = await tempDir();
  await Deno.writeFile(`${root.path}/f.bin`, pattern(10));
  using m = manager(root.path, { acceptTimeoutMs: 300 });
  const { port } = m.listen("p1", "127.0.0.9");
  const result = m.transfer(
    request({ xfer: "p1", dir: "send", path: "/f.bin", peer: "127.0.0.9" }),
  );
  using intruder = await Deno.connect({ hostname: "127.0.0.1", port });
  // The slave closes the intruder's connection without sending anything.
  const n = await intruder.read(new Uint8Array(16)).catch(() => null);
  assert.equal(n, null);
  await assert.rejects(result, hasCode("timeout"));
  // The listener is gone after the timeout.
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }));
});

Deno.test("an unclaimed listener expires and a later transfer fails", async () => {
  await using root = await tempDir();
  using m = manager(root.path, { acceptTimeoutMs: 50 });
  const { port } = m.listen("late", null);
  {
    using early = await Deno.connect({ hostname: "127.0.0.1", port });
    assert.equal(await early.read(new Uint8Array(1)).catch(() => null), null);
  }
  assert.equal(m.pendingListeners, 0);
  await assert.rejects(
    m.transfer(request({ xfer: "late", dir: "send", path: "/x" })),
    hasCode("data_connection"),
  );
});

Deno.test("abort ends a transfer waiting for its data connection", async () => {
  await using root = await tempDir();
  await Deno.writeFile(`${root.path}/f.bin`, pattern(10));
  using m = manager(root.path);
  const { port } = m.listen("a1", "127.0.0.1");
  const result = m.transfer(request({ xfer: "a1", dir: "send", path: "/f.bin" }));
  m.abort("a1");
  await assert.rejects(result, hasCode("aborted"));
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }));
});

Deno.test("abort of a running receive keeps the partial file and reports it", async () => {
  await using root = await tempDir();
  const { promise: started, resolve } = Promise.withResolvers<number>();
  using m = manager(root.path, {
    progressIntervalMs: 0,
    onProgress: (_xfer, bytes) => resolve(bytes),
  });
  const { port } = m.listen("a2", "127.0.0.1");
  const result = m.transfer(request({ xfer: "a2", dir: "receive", path: "/part.bin" }));
  using client = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunk = pattern(300 * 1024);
  await writeAll(client, chunk); // more than one buffer: the first is on disk after this
  await started;
  m.abort("a2");
  await assert.rejects(result, (e: unknown) => {
    hasCode("aborted")(e);
    const partial = (e as SlaveError).partial;
    assert.ok(partial !== undefined);
    assert.ok(partial.bytes > 0 && partial.bytes <= chunk.length);
    assert.equal(partial.size, partial.bytes);
    return true;
  });
  const onDisk = await Deno.readFile(`${root.path}/part.bin`);
  assert.deepEqual(onDisk, chunk.subarray(0, onDisk.length));
});

Deno.test("an active connect that fails is a data_connection error", async () => {
  await using root = await tempDir();
  await Deno.writeFile(`${root.path}/f.bin`, pattern(10));
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = closed.addr.port;
  closed.close();
  using m = manager(root.path);
  await assert.rejects(
    m.transfer(request({
      xfer: "c1",
      dir: "send",
      path: "/f.bin",
      endpoint: { kind: "active", host: "127.0.0.1", port },
    })),
    hasCode("data_connection"),
  );
});

Deno.test("listen fails with no_port when the whole range is taken", async () => {
  await using root = await tempDir();
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = taken.addr.port;
  using m = new TransferManager(new Storage(root.path), {
    listenAddress: "127.0.0.1",
    publicHost: "192.0.2.1",
    passivePorts: { from: port, to: port },
  });
  assert.throws(() => m.listen("n1", null), hasCode("no_port"));
  assert.throws(() => m.listen("n1", null), hasCode("no_port"));
});

Deno.test("close aborts pending listeners and refuses new work", async () => {
  await using root = await tempDir();
  await Deno.writeFile(`${root.path}/f`, pattern(10));
  const m = manager(root.path);
  const { port } = m.listen("c", null);
  const result = m.transfer(request({ xfer: "c", dir: "send", path: "/f" }));
  m.close();
  await assert.rejects(result, hasCode("aborted"));
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }));
  assert.throws(() => m.listen("d", null), hasCode("data_connection"));
});

// ------------------------------------------------------------------ TLS data connections

const PAIR = createSelfSignedCert("localhost");

/** The OpenSSL engine, when libssl.so.3 loads here. */
const OPENSSL: OpenSsl | undefined = (() => {
  try {
    return loadOpenSsl();
  } catch {
    return undefined;
  }
})();

/** A manager with the test certificate for TLS data connections. */
function tlsManager(root: string, options: TransferOptions = {}): TransferManager {
  return manager(root, { tls: { cert: PAIR.cert, key: PAIR.key }, ...options });
}

/** A rustls client over a fresh connection to the slave's passive port. */
async function startTlsClient(port: number): Promise<Deno.TlsConn> {
  const plain = await Deno.connect({ hostname: "127.0.0.1", port });
  return await Deno.startTls(plain, { hostname: "127.0.0.1", caCerts: [PAIR.cert] });
}

Deno.test("TLS passive receive and send (PROT P): same bytes and CRC32, TLS reported", async () => {
  await using root = await tempDir();
  using m = tlsManager(root.path);
  const data = pattern(1_234_567, 21);

  const up = m.listen("t1", "127.0.0.1");
  const received = m.transfer(
    request({ xfer: "t1", dir: "receive", path: "/tls/up.bin", tls: "server" }),
  );
  {
    using client = await startTlsClient(up.port);
    await writeAll(client, data);
    await client.closeWrite(); // close_notify, then FIN
    const r = await received;
    assert.deepEqual([r.bytes, r.size, r.crc32, r.crcWhole], [
      data.length,
      data.length,
      crc32(data),
      true,
    ]);
    assert.deepEqual(r.tls, { protocol: "TLSv1.3", resumed: false });
    assert.equal(await client.read(new Uint8Array(1)), null, "the slave closes TLS cleanly");
  }
  assert.deepEqual(await Deno.readFile(`${root.path}/tls/up.bin`), data);

  const down = m.listen("t2", "127.0.0.1");
  const sent = m.transfer(request({ xfer: "t2", dir: "send", path: "/tls/up.bin", tls: "server" }));
  {
    using client = await startTlsClient(down.port);
    assert.deepEqual(await readAll(client), data); // ends with the slave's close_notify
    const r = await sent;
    assert.deepEqual([r.bytes, r.crc32, r.crcWhole], [data.length, 0, false]);
    assert.equal(r.tls?.protocol, "TLSv1.3");
  }
});

Deno.test("TLS active send: the slave connects out and is the TLS server", async () => {
  await using root = await tempDir();
  const data = pattern(500_000, 22);
  await Deno.writeFile(`${root.path}/a.bin`, data);
  using m = tlsManager(root.path);
  using server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const result = m.transfer(request({
    xfer: "t3",
    dir: "send",
    path: "/a.bin",
    tls: "server",
    endpoint: { kind: "active", host: "127.0.0.1", port: server.addr.port },
  }));
  const plain = await server.accept();
  using client = await Deno.startTls(plain, { hostname: "127.0.0.1", caCerts: [PAIR.cert] });
  assert.deepEqual(await readAll(client), data);
  const r = await result;
  assert.deepEqual([r.bytes, r.crc32], [data.length, 0]);
  assert.equal(r.tls?.protocol, "TLSv1.3");
});

Deno.test("TLS client role (SSCN/CPSV): the slave receives from a TLS server", async () => {
  await using root = await tempDir();
  using m = tlsManager(root.path);
  const other = createSelfSignedCert("other.example"); // not trusted anywhere: FXP peers
  using server = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: other.cert,
    key: other.key,
  });
  const data = pattern(700_001, 23);
  const result = m.transfer(request({
    xfer: "t4",
    dir: "receive",
    path: "/fxp.bin",
    tls: "client",
    endpoint: { kind: "active", host: "127.0.0.1", port: server.addr.port },
  }));
  using conn = await server.accept();
  await writeAll(conn, data);
  await conn.closeWrite();
  const r = await result;
  assert.deepEqual([r.bytes, r.size, r.crc32], [data.length, data.length, crc32(data)]);
  assert.equal(r.tls?.protocol, "TLSv1.3");
  assert.deepEqual(await Deno.readFile(`${root.path}/fxp.bin`), data);
  assert.equal(await conn.read(new Uint8Array(1)), null);
});

Deno.test("a failed TLS handshake on a data connection is a data_connection error naming TLS", async () => {
  await using root = await tempDir();
  await Deno.writeFile(`${root.path}/f.bin`, pattern(10));
  using m = tlsManager(root.path);
  const { port } = m.listen("t5", "127.0.0.1");
  const result = m.transfer(request({ xfer: "t5", dir: "send", path: "/f.bin", tls: "server" }));
  using client = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(client, new TextEncoder().encode("this is not a TLS ClientHello\r\n"));
  await assert.rejects(result, (e: unknown) => {
    hasCode("data_connection")(e);
    assert.match((e as Error).message, /TLS/);
    return true;
  });
  // TLS requested from a manager without a certificate.
  using plainOnly = manager(root.path);
  plainOnly.listen("t6", null);
  await assert.rejects(
    plainOnly.transfer(request({ xfer: "t6", dir: "send", path: "/f.bin", tls: "server" })),
    hasCode("data_connection"),
  );
});

Deno.test("abort of a running TLS receive keeps the partial file and reports it", async () => {
  await using root = await tempDir();
  const { promise: started, resolve } = Promise.withResolvers<number>();
  using m = tlsManager(root.path, {
    progressIntervalMs: 0,
    onProgress: (_xfer, bytes) => resolve(bytes),
  });
  const { port } = m.listen("t7", "127.0.0.1");
  const result = m.transfer(
    request({ xfer: "t7", dir: "receive", path: "/part.bin", tls: "server" }),
  );
  using client = await startTlsClient(port);
  const chunk = pattern(600 * 1024, 24);
  await writeAll(client, chunk);
  await started;
  m.abort("t7");
  await assert.rejects(result, (e: unknown) => {
    hasCode("aborted")(e);
    const partial = (e as SlaveError).partial;
    assert.ok(partial !== undefined && partial.bytes > 0 && partial.size === partial.bytes);
    return true;
  });
  const onDisk = await Deno.readFile(`${root.path}/part.bin`);
  assert.deepEqual(onDisk, chunk.subarray(0, onDisk.length));
  // The slave dropped the connection without close_notify.
  await assert.rejects(async () => {
    while ((await client.read(new Uint8Array(1024))) !== null) { /* drain */ }
    throw new Error("ended");
  });
});

Deno.test("setTicketKeys accepts only 48 bytes", async () => {
  await using root = await tempDir();
  using m = tlsManager(root.path);
  m.setTicketKeys(new Uint8Array(48));
  assert.throws(() => m.setTicketKeys(new Uint8Array(32)), RangeError);
});

Deno.test({
  name:
    "[openssl] a data connection resumes a session from another server with the same ticket secret",
  ignore: OPENSSL === undefined,
  async fn() {
    const engine = OPENSSL!;
    const secret = crypto.getRandomValues(new Uint8Array(48));
    // "The master": a TLS server with the same secret; the client's control connection.
    using masterListener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const master = (async () => {
      const conn = await upgradeToTlsServer(await masterListener.accept(), {
        cert: PAIR.cert,
        key: PAIR.key,
        ticketKeys: secret,
        engine,
      });
      await writeAll(conn, new TextEncoder().encode("220 hi\r\n"));
      await conn.closeWrite();
      await conn.read(new Uint8Array(16)); // until the client's end
      conn.close();
      await conn.closed;
    })();
    const control = await connectTlsClient(
      { hostname: "127.0.0.1", port: masterListener.addr.port },
      { caCerts: [PAIR.cert], engine },
    );
    await readAll(control); // TLS 1.3 tickets arrive with the first data
    const session = control.getSession();
    assert.ok(session !== undefined);
    control.close();
    await Promise.all([control.closed, master]);

    await using root = await tempDir();
    const data = pattern(100_000, 25);
    await Deno.writeFile(`${root.path}/r.bin`, data);
    using m = manager(root.path, { tls: { cert: PAIR.cert, key: PAIR.key, engine } });
    m.setTicketKeys(secret);
    const { port } = m.listen("t8", "127.0.0.1");
    const result = m.transfer(request({ xfer: "t8", dir: "send", path: "/r.bin", tls: "server" }));
    const client = await connectTlsClient(
      await Deno.connect({ hostname: "127.0.0.1", port }),
      { caCerts: [PAIR.cert], session, engine },
    );
    assert.deepEqual(await readAll(client), data);
    client.close();
    const r = await result;
    await client.closed;
    assert.deepEqual(r.tls, { protocol: "TLSv1.3", resumed: true });
    assert.equal(client.info.resumed, true);
  },
});

Deno.test("a verified copy lands only when size and CRC32 match; nothing is left otherwise", async () => {
  await using root = await tempDir();
  using m = manager(root.path);
  const data = pattern(300_000, 7);
  const copy = async (xfer: string, path: string, verify: { size: number; crc32: number }) => {
    const { port } = m.listen(xfer, "127.0.0.1");
    {
      using client = await Deno.connect({ hostname: "127.0.0.1", port });
      await writeAll(client, data);
    }
    return m.transfer({ ...request({ xfer, dir: "receive", path }), verify });
  };
  const r = await copy("c1", "/copies/ok.bin", { size: data.length, crc32: crc32(data) });
  assert.equal(r.crc32, crc32(data));
  assert.deepEqual(await Deno.readFile(`${root.path}/copies/ok.bin`), data);

  await assert.rejects(
    copy("c2", "/copies/bad.bin", { size: data.length, crc32: crc32(data) ^ 1 }),
    (e: unknown) => e instanceof SlaveError && e.code === "mismatch" && e.partial === undefined,
  );
  await assert.rejects(
    copy("c3", "/copies/short.bin", { size: data.length + 1, crc32: crc32(data) }),
    (e: unknown) => e instanceof SlaveError && e.code === "mismatch",
  );
  const left = [...Deno.readDirSync(`${root.path}/copies`)].map((e) => e.name);
  assert.deepEqual(left, ["ok.bin"], "no temporary or mismatched file stays behind");
});

// ------------------------------------------------------------------ sibling sends

/** A holder slave as the test plays it: connects to `port` and sends `bytes` (optionally over TLS as client). */
async function holderSends(
  port: number,
  bytes: Uint8Array,
  options: { tls?: boolean; end?: boolean } = {},
): Promise<Deno.TcpConn | Awaited<ReturnType<typeof connectTlsClient>>> {
  const plain = await Deno.connect({ hostname: "127.0.0.1", port });
  const conn = options.tls ? await connectTlsClient(plain, { insecure: true }) : plain;
  await writeAll(conn, bytes);
  if (options.end ?? true) await conn.closeWrite();
  return conn;
}

function sibling(
  xfer: string,
  source: Partial<NonNullable<TransferReq["source"]>> & { size: number },
  fields: Partial<TransferReq> = {},
): TransferReq {
  return request({
    xfer,
    dir: "send",
    path: "/dir/f.bin",
    source: {
      xfer: `${xfer}-holder`,
      peer: "127.0.0.1",
      tls: "none",
      crc32: null,
      keep: false,
      ...source,
    },
    ...fields,
  });
}

/** Opens the client's and the holder's listeners on `m` and starts the sibling send. */
function startSibling(m: TransferManager, req: TransferReq) {
  const client = m.listen(req.xfer, "127.0.0.1");
  const holder = m.listen(req.source!.xfer, "127.0.0.1");
  const result = m.transfer(req);
  result.catch(() => {}); // awaited by the test, maybe after other failures
  return { clientPort: client.port, holderPort: holder.port, result };
}

Deno.test("sibling send: the holder's bytes reach the client as they arrive, CRC32 checked", async () => {
  await using root = await tempDir();
  using m = manager(root.path);
  const data = pattern(2_000_003, 31);
  const { clientPort, holderPort, result } = startSibling(
    m,
    sibling("s1", { size: data.length, crc32: crc32(data) }),
  );
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: clientPort });
  // The first half reaches the client while the holder has not sent the rest: streamed, not stored.
  const half = 1_000_000;
  using from = await holderSends(holderPort, data.subarray(0, half), { end: false });
  const first = new Uint8Array(half);
  let got = 0;
  while (got < half) got += (await conn.read(first.subarray(got)))!;
  assert.deepEqual(first, data.subarray(0, half));
  await writeAll(from, data.subarray(half));
  await from.closeWrite();
  assert.deepEqual(await readAll(conn), data.subarray(half));
  const r = await result;
  assert.deepEqual([r.bytes, r.size, r.crc32, r.crcWhole, r.kept], [
    data.length,
    data.length,
    crc32(data),
    true,
    undefined,
  ]);
  assert.equal(m.pendingListeners, 0);
  assert.deepEqual([...Deno.readDirSync(root.path)], [], "nothing written without keep");
});

Deno.test("sibling send from an offset: the holder sends the rest, the byte count is checked", async () => {
  await using root = await tempDir();
  using m = manager(root.path);
  const data = pattern(500_000, 32);
  const offset = 123_456;
  const { clientPort, holderPort, result } = startSibling(
    m,
    sibling("s2", { size: data.length, crc32: crc32(data) }, { offset }),
  );
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: clientPort });
  using _from = await holderSends(holderPort, data.subarray(offset));
  assert.deepEqual(await readAll(conn), data.subarray(offset));
  const r = await result;
  assert.deepEqual([r.bytes, r.crc32, r.crcWhole], [
    data.length - offset,
    crc32(data.subarray(offset)),
    false,
  ]);
});

Deno.test("sibling send fails when the holder's bytes are short, too many, or of another CRC32", async () => {
  await using root = await tempDir();
  using m = manager(root.path);
  const data = pattern(300_000, 33);
  const run = async (xfer: string, sent: Uint8Array, crc: number, keep = false) => {
    const { clientPort, holderPort, result } = startSibling(
      m,
      sibling(xfer, { size: data.length, crc32: crc, keep }),
    );
    using conn = await Deno.connect({ hostname: "127.0.0.1", port: clientPort });
    const from = await holderSends(holderPort, sent).catch(() => null); // may be cut off
    const got = await readAll(conn).catch(() => new Uint8Array());
    from?.close();
    assert.ok(got.length <= data.length, "never more than the file to the client");
    return result;
  };
  // The holder died after 100 000 bytes: its connection ended early.
  await assert.rejects(
    run("e1", data.subarray(0, 100_000), crc32(data)),
    hasCode("data_connection"),
  );
  await assert.rejects(run("e2", concat([data, pattern(10)]), crc32(data)), hasCode("mismatch"));
  await assert.rejects(run("e3", data, crc32(data) ^ 1), hasCode("mismatch"));
  // A kept copy of bytes that do not match leaves nothing behind.
  await assert.rejects(
    run("e4", data.subarray(0, 5), crc32(data), true),
    hasCode("data_connection"),
  );
  await assert.rejects(run("e5", data, crc32(data) ^ 1, true), hasCode("mismatch"));
  const left = [...Deno.readDirSync(`${root.path}/dir`)].map((e) => e.name);
  assert.deepEqual(left, [], "no temporary file stays behind");
  assert.equal(m.pendingListeners, 0);
});

Deno.test("sibling send with keep: the bytes also land as this slave's copy, reported as kept", async () => {
  await using root = await tempDir();
  using m = manager(root.path);
  const data = pattern(900_000, 34);
  const { clientPort, holderPort, result } = startSibling(
    m,
    sibling("k1", { size: data.length, crc32: crc32(data), keep: true }),
  );
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: clientPort });
  using _from = await holderSends(holderPort, data);
  assert.deepEqual(await readAll(conn), data);
  const r = await result;
  assert.equal(r.kept, true);
  assert.deepEqual(await Deno.readFile(`${root.path}/dir/f.bin`), data);
  assert.deepEqual([...Deno.readDirSync(`${root.path}/dir`)].map((e) => e.name), ["f.bin"]);
});

Deno.test("sibling send with keep where no copy can be written still serves the client", async () => {
  await using root = await tempDir();
  await Deno.writeFile(`${root.path}/dir`, pattern(3)); // the copy's folder is a file here
  using m = manager(root.path);
  const data = pattern(300_000, 37);
  const { clientPort, holderPort, result } = startSibling(
    m,
    sibling("k2", { size: data.length, crc32: crc32(data), keep: true }),
  );
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: clientPort });
  using _from = await holderSends(holderPort, data);
  assert.deepEqual(await readAll(conn), data);
  const r = await result;
  assert.deepEqual([r.bytes, r.kept], [data.length, false]);
  assert.deepEqual(await Deno.readFile(`${root.path}/dir`), pattern(3));
});

Deno.test("sibling send: abort drops the client's and the holder's connections", async () => {
  await using root = await tempDir();
  const { promise: started, resolve } = Promise.withResolvers<number>();
  using m = manager(root.path, { progressIntervalMs: 0, onProgress: (_x, n) => resolve(n) });
  const data = pattern(600_000, 35);
  const { clientPort, holderPort, result } = startSibling(
    m,
    sibling("a1", { size: 64 * 1024 * 1024, crc32: 1, keep: true }),
  );
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: clientPort });
  using from = await holderSends(holderPort, data, { end: false });
  await started;
  m.abort("a1");
  await assert.rejects(result, hasCode("aborted"));
  // The holder notices: its next writes fail once the slave closed its end.
  await assert.rejects(async () => {
    for (;;) await writeAll(from, data);
  });
  await readAll(conn).catch(() => {});
  assert.deepEqual([...Deno.readDirSync(`${root.path}/dir`)], [], "the kept copy is removed");
});

Deno.test("sibling send refuses a receive, a kept range, and a missing holder listener", async () => {
  await using root = await tempDir();
  using m = manager(root.path);
  m.listen("b1", "127.0.0.1");
  await assert.rejects(
    m.transfer(sibling("b1", { size: 10 }, { dir: "receive" })),
    hasCode("bad_request"),
  );
  await assert.rejects(
    m.transfer(sibling("b1", { size: 10, crc32: 5, keep: true }, { offset: 3 })),
    hasCode("bad_request"),
  );
  await assert.rejects(
    m.transfer(sibling("b1", { size: 10 }, { offset: 11 })),
    hasCode("bad_request"),
  );
  await assert.rejects(m.transfer(sibling("b1", { size: 10 })), hasCode("data_connection"));
  assert.equal(m.pendingListeners, 0, "the client's listener is released too");
});

Deno.test("sibling send over TLS: TLS to the client (PROT P) and from the holder", async () => {
  await using root = await tempDir();
  using m = tlsManager(root.path);
  const data = pattern(1_300_000, 36);
  const { clientPort, holderPort, result } = startSibling(
    m,
    sibling("t1", { size: data.length, crc32: crc32(data), tls: "server" }, { tls: "server" }),
  );
  const [conn, from] = await Promise.all([
    startTlsClient(clientPort),
    holderSends(holderPort, data, { tls: true }),
  ]);
  assert.deepEqual(await readAll(conn), data); // ends with the slave's close_notify
  const r = await result;
  assert.deepEqual([r.bytes, r.crc32], [data.length, crc32(data)]);
  assert.equal(r.tls?.protocol, "TLSv1.3");
  conn.close();
  from.close();
});

Deno.test("sibling send as the TLS client (SSCN) to an active endpoint, from a plain holder", async () => {
  await using root = await tempDir();
  using m = tlsManager(root.path);
  const other = createSelfSignedCert("other.example");
  using server = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: other.cert,
    key: other.key,
  });
  const data = pattern(700_000, 38);
  const holder = m.listen("t2-holder", "127.0.0.1");
  const result = m.transfer(sibling("t2", { size: data.length, crc32: crc32(data) }, {
    tls: "client",
    endpoint: { kind: "active", host: "127.0.0.1", port: server.addr.port },
  }));
  using _from = await holderSends(holder.port, data);
  using conn = await server.accept();
  assert.deepEqual(await readAll(conn), data);
  const r = await result;
  assert.deepEqual([r.bytes, r.crc32], [data.length, crc32(data)]);
  assert.equal(r.tls?.protocol, "TLSv1.3");
});

Deno.test("a kept copy that ends short keeps its bytes; the same keep resumes it, checked whole", async () => {
  await using root = await tempDir();
  using m = manager(root.path);
  const data = pattern(300_000, 9);
  const send = async (
    xfer: string,
    path: string,
    bytes: Uint8Array,
    offset: number,
    verify: { size: number; crc32: number; keep: string },
  ) => {
    const { port } = m.listen(xfer, "127.0.0.1");
    {
      using client = await Deno.connect({ hostname: "127.0.0.1", port });
      await writeAll(client, bytes);
    }
    return m.transfer({ ...request({ xfer, dir: "receive", path, offset }), verify });
  };
  const verify = { size: data.length, crc32: crc32(data), keep: "copy-1" };
  const dir = `${root.path}/r`;
  await assert.rejects(
    send("x1", "/r/f.bin", data.subarray(0, 100_000), 0, verify),
    (e: unknown) =>
      e instanceof SlaveError && e.code === "data_connection" && e.partial?.size === 100_000,
  );
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [".drftpd-copy.copy-1.f.bin"]);
  // An offset beyond what was kept is refused; the rest from 100000 completes the file.
  m.listen("x2", "127.0.0.1");
  await assert.rejects(
    m.transfer({
      ...request({ xfer: "x2", dir: "receive", path: "/r/f.bin", offset: 100_001 }),
      verify,
    }),
    hasCode("bad_request"),
  );
  const r = await send("x3", "/r/f.bin", data.subarray(100_000), 100_000, verify);
  assert.equal(r.size, data.length);
  assert.deepEqual(await Deno.readFile(`${dir}/f.bin`), data);
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["f.bin"]);

  // What a copy kept is deleted by an abort naming its id.
  const dropped = { ...verify, keep: "copy-3" };
  await assert.rejects(send("w1", "/r/k.bin", data.subarray(0, 10_000), 0, dropped));
  assert.ok([...Deno.readDirSync(dir)].some((e) => e.name === ".drftpd-copy.copy-3.k.bin"));
  m.abort("copy-3");
  await poll(() =>
    [...Deno.readDirSync(dir)].some((e) => e.name.includes("copy-3")) ? undefined : true
  );
  // A resumed copy whose whole CRC32 is wrong is a mismatch and leaves nothing behind.
  const other = { ...verify, keep: "copy-2" };
  await assert.rejects(send("y1", "/r/g.bin", data.subarray(0, 50_000), 0, other));
  const wrong = data.slice(50_000);
  wrong[0]! ^= 1;
  await assert.rejects(send("y2", "/r/g.bin", wrong, 50_000, other), hasCode("mismatch"));
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["f.bin"]);
  // Without keep, a verified copy must start at 0.
  m.listen("z1", "127.0.0.1");
  await assert.rejects(
    m.transfer({
      ...request({ xfer: "z1", dir: "receive", path: "/r/h.bin", offset: 5 }),
      verify: { size: 10, crc32: 0 },
    }),
    hasCode("bad_request"),
  );
});
