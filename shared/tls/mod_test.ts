import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import {
  certFingerprint,
  connectTlsClient,
  createSelfSignedCert,
  ensureSelfSignedCert,
  loadOpenSsl,
  type OpenSsl,
  type TlsByteConn,
  TlsHandshakeError,
  upgradeToTlsServer,
} from "./mod.ts";
import { readAll, writeAll } from "../bytes.ts";

const PAIR = createSelfSignedCert("localhost");
const enc = new TextEncoder();
const dec = new TextDecoder();

const HAS_OPENSSL = await (async () => {
  try {
    const out = await new Deno.Command("openssl", { args: ["version"], stdout: "null" }).output();
    return out.success;
  } catch {
    return false;
  }
})();

/** The OpenSSL engine, when libssl.so.3 loads here (it stays loaded for the whole run). */
const OPENSSL: OpenSsl | undefined = (() => {
  try {
    return loadOpenSsl();
  } catch {
    return undefined;
  }
})();

interface Engine {
  name: string;
  /** Spread into options: `{ engine }` for OpenSSL, nothing for node:tls. */
  opts: { engine?: OpenSsl };
  available: boolean;
}

const ENGINES: Engine[] = [
  { name: "node:tls", opts: {}, available: true },
  { name: "openssl", opts: OPENSSL ? { engine: OPENSSL } : {}, available: OPENSSL !== undefined },
];

/** Registers one test per engine. */
function testEachEngine(name: string, fn: (e: Engine) => Promise<void>, needsOpenSslCli = false) {
  for (const e of ENGINES) {
    Deno.test({
      name: `[${e.name}] ${name}`,
      ignore: !e.available || (needsOpenSslCli && !HAS_OPENSSL),
      fn: () => fn(e),
    });
  }
}

function listen(): Deno.TcpListener {
  return Deno.listen({ hostname: "127.0.0.1", port: 0 });
}

function portOf(l: Deno.Listener): number {
  return (l.addr as Deno.NetAddr).port;
}

/** Reads one CRLF/LF-terminated line (byte by byte: the rest stays in the connection). */
async function readLine(c: { read(p: Uint8Array): Promise<number | null> }): Promise<string> {
  const bytes: number[] = [];
  const one = new Uint8Array(1);
  while (true) {
    const n = await c.read(one);
    if (n === null) throw new Error("EOF before end of line");
    if (n === 0) continue;
    if (one[0] === 0x0a) return dec.decode(new Uint8Array(bytes)).replace(/\r$/, "");
    bytes.push(one[0]!);
  }
}

/** A server on port 0 that upgrades each accepted connection and runs `handle` on it. */
function tlsServer(
  handle: (conn: TlsByteConn) => Promise<void>,
  opts: Partial<Parameters<typeof upgradeToTlsServer>[1]> = {},
): { port: number; done: Promise<void>; listener: Deno.TcpListener } {
  const listener = listen();
  const done = (async () => {
    const plain = await listener.accept();
    const conn = await upgradeToTlsServer(plain, { cert: PAIR.cert, key: PAIR.key, ...opts });
    try {
      await handle(conn);
    } finally {
      conn.close();
      await conn.closed;
    }
  })();
  return { port: portOf(listener), done, listener };
}

testEachEngine("upgradeToTlsServer: AUTH TLS, 234, then an echo over Deno.startTls", async (e) => {
  using listener = listen();
  const server = (async () => {
    const plain = await listener.accept();
    assert.equal(await readLine(plain), "AUTH TLS");
    await writeAll(plain, enc.encode("234 OK\r\n"));
    await using conn = await upgradeToTlsServer(plain, {
      cert: PAIR.cert,
      key: PAIR.key,
      ...e.opts,
    });
    assert.equal(conn.info.protocol, "TLSv1.3");
    assert.equal(conn.info.resumed, false);
    assert.ok(conn.info.cipher.length > 0);
    const line = await readLine(conn);
    await writeAll(conn, enc.encode(`echo ${line}\r\n`));
    await conn.closeWrite();
    assert.equal(await conn.read(new Uint8Array(16)), null);
    assert.equal(conn.truncated, false);
  })();
  const plain = await Deno.connect({ hostname: "127.0.0.1", port: portOf(listener) });
  await writeAll(plain, enc.encode("AUTH TLS\r\n"));
  assert.equal(await readLine(plain), "234 OK");
  const tls = await Deno.startTls(plain, { hostname: "127.0.0.1", caCerts: [PAIR.cert] });
  await writeAll(tls, enc.encode("hello over tls\r\n"));
  assert.equal(await readLine(tls), "echo hello over tls");
  assert.equal(await tls.read(new Uint8Array(16)), null); // server's close_notify
  tls.close();
  await server;
});

testEachEngine(
  "upgradeToTlsServer: openssl s_client -starttls ftp completes the handshake",
  async (e) => {
    using listener = listen();
    const server = (async () => {
      const plain = await listener.accept();
      await writeAll(plain, enc.encode("220 ready\r\n"));
      assert.match(await readLine(plain), /^AUTH TLS$/i);
      await writeAll(plain, enc.encode("234 AUTH TLS OK\r\n"));
      await using conn = await upgradeToTlsServer(plain, {
        cert: PAIR.cert,
        key: PAIR.key,
        ...e.opts,
      });
      await writeAll(conn, enc.encode("220 hello in TLS\r\n"));
      await conn.closeWrite();
    })();
    const out = await new Deno.Command("openssl", {
      args: [
        "s_client",
        "-starttls",
        "ftp",
        "-connect",
        `127.0.0.1:${portOf(listener)}`,
        "-servername",
        "localhost",
        "-ign_eof",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    }).output();
    await server;
    const text = dec.decode(out.stdout) + dec.decode(out.stderr);
    assert.match(text, /Cipher is /);
    assert.match(text, /Verify return code: /);
    assert.match(text, /220 hello in TLS/);
  },
  true,
);

testEachEngine(
  "info.peerFingerprint: the server's certificate, seen by an insecure client",
  async (e) => {
    const { port, done } = tlsServer(async (conn) => {
      assert.equal(conn.info.peerFingerprint, undefined, "no client certificate");
      await writeAll(conn, enc.encode("hi\r\n"));
    }, e.opts);
    const client = await connectTlsClient({ hostname: "127.0.0.1", port }, {
      insecure: true,
      ...e.opts,
    });
    assert.equal(client.info.peerFingerprint, PAIR.fingerprint);
    assert.equal(await readLine(client), "hi");
    await Promise.all([client[Symbol.asyncDispose](), done]);
  },
);

testEachEngine("8 MiB each way arrive intact (read/write and streams)", async (e) => {
  const size = 8 * 1024 * 1024;
  const up = crypto.getRandomValues(new Uint8Array(64 * 1024));
  const payload = new Uint8Array(size);
  for (let off = 0; off < size; off += up.length) payload.set(up, off);
  const { port, done } = tlsServer(async (conn) => {
    const got = await readAll(conn);
    assert.equal(got.length, size);
    assert.deepEqual(got, payload);
    // Send it back through the Web stream side.
    const writer = conn.writable.getWriter();
    for (let off = 0; off < size; off += 1024 * 1024) {
      await writer.write(payload.subarray(off, off + 1024 * 1024));
    }
    await writer.close(); // close_notify + FIN
  }, e.opts);
  await using client = await connectTlsClient({ hostname: "127.0.0.1", port }, {
    caCerts: [PAIR.cert],
    ...e.opts,
  });
  await writeAll(client, payload);
  await client.closeWrite();
  const parts: Uint8Array[] = [];
  for await (const chunk of client.readable) parts.push(chunk.slice());
  const back = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    back.set(p, off);
    off += p.length;
  }
  assert.equal(off, size);
  assert.deepEqual(back, payload);
  assert.equal(client.truncated, false);
  await done;
});

testEachEngine("a bare TCP FIN reads as EOF with truncated = true", async (e) => {
  const { port, done } = tlsServer(async (conn) => {
    assert.equal(dec.decode(await readAll(conn)), "partial upload");
    assert.equal(conn.truncated, true);
  }, e.opts);
  const raw = await Deno.connect({ hostname: "127.0.0.1", port });
  const client = await connectTlsClient(raw, { caCerts: [PAIR.cert], ...e.opts });
  await writeAll(client, enc.encode("partial upload"));
  await new Promise((r) => setTimeout(r, 50));
  await raw.closeWrite(); // FIN under TLS, no close_notify
  await done;
  client.abort();
  await client.closed;
});

testEachEngine("close() sends close_notify; abort() does not", async (e) => {
  for (const how of ["close", "abort"] as const) {
    const { port, done } = tlsServer(async (conn) => {
      assert.equal(dec.decode(await readAll(conn)), "bye");
      assert.equal(conn.truncated, how === "abort", how);
    }, e.opts);
    const client = await connectTlsClient({ hostname: "127.0.0.1", port }, {
      caCerts: [PAIR.cert],
      ...e.opts,
    });
    await writeAll(client, enc.encode("bye"));
    await new Promise((r) => setTimeout(r, 50));
    client[how]();
    client[how](); // idempotent
    assert.equal(await client.read(new Uint8Array(4)), null);
    await client.closed;
    await done;
  }
});

testEachEngine(
  "upgradeToTlsServer: plaintext, timeout, abort give TlsHandshakeError",
  async (e) => {
    {
      using listener = listen();
      const server = listener.accept().then((plain) =>
        upgradeToTlsServer(plain, { cert: PAIR.cert, key: PAIR.key, ...e.opts })
      );
      const c = await Deno.connect({ hostname: "127.0.0.1", port: portOf(listener) });
      await writeAll(c, enc.encode("USER anonymous\r\n".repeat(10)));
      await assert.rejects(server, TlsHandshakeError);
      assert.equal(await c.read(new Uint8Array(64)).catch(() => null), null);
      c.close();
    }
    {
      using listener = listen();
      const server = listener.accept().then((plain) =>
        upgradeToTlsServer(plain, {
          cert: PAIR.cert,
          key: PAIR.key,
          handshakeTimeoutMs: 100,
          ...e.opts,
        })
      );
      const c = await Deno.connect({ hostname: "127.0.0.1", port: portOf(listener) });
      await assert.rejects(server, (err: unknown) => {
        assert.ok(err instanceof TlsHandshakeError);
        assert.match(err.message, /timed out/);
        return true;
      });
      c.close();
    }
    {
      using listener = listen();
      const ac = new AbortController();
      const server = listener.accept().then((plain) =>
        upgradeToTlsServer(plain, { cert: PAIR.cert, key: PAIR.key, signal: ac.signal, ...e.opts })
      );
      const c = await Deno.connect({ hostname: "127.0.0.1", port: portOf(listener) });
      setTimeout(() => ac.abort(new Error("shutdown")), 50);
      await assert.rejects(server, /shutdown/);
      c.close();
    }
    {
      using listener = listen();
      const server = listener.accept().then((plain) =>
        upgradeToTlsServer(plain, {
          cert: PAIR.cert,
          key: PAIR.key,
          ticketKeys: new Uint8Array(47),
          ...e.opts,
        })
      );
      const c = await Deno.connect({ hostname: "127.0.0.1", port: portOf(listener) });
      await assert.rejects(server, RangeError);
      c.close();
    }
  },
);

testEachEngine("connectTlsClient: verifies the certificate unless insecure", async (e) => {
  const other = createSelfSignedCert("elsewhere.invalid");
  using listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: other.cert,
    key: other.key,
  });
  const server = (async () => {
    for (let i = 0; i < 3; i++) {
      const c = await listener.accept();
      await c.handshake().then(() => c.readable.pipeTo(c.writable)).catch(() => c.close());
    }
  })();
  const port = portOf(listener);
  // Unknown CA.
  await assert.rejects(
    connectTlsClient({ hostname: "127.0.0.1", port }, { caCerts: [PAIR.cert], ...e.opts }),
    TlsHandshakeError,
  );
  // Trusted, but the name does not match.
  await assert.rejects(
    connectTlsClient({ hostname: "127.0.0.1", port }, {
      caCerts: [other.cert],
      servername: "localhost",
      ...e.opts,
    }),
    TlsHandshakeError,
  );
  // Insecure: anything goes (FXP peers with self-signed certificates).
  await using conn = await connectTlsClient({ hostname: "127.0.0.1", port }, {
    insecure: true,
    ...e.opts,
  });
  await writeAll(conn, enc.encode("ping\n"));
  assert.equal(await readLine(conn), "ping");
  await conn.closeWrite();
  assert.equal(await conn.read(new Uint8Array(8)), null);
  await server;
});

testEachEngine("connectTlsClient: over a dialed connection (data with SSCN)", async (e) => {
  // The "client" listens (as after PORT); we dial and then act as TLS client.
  using listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, ...PAIR });
  const server = (async () => {
    const c = await listener.accept();
    await c.readable.pipeTo(c.writable);
  })();
  const plain = await Deno.connect({ hostname: "127.0.0.1", port: portOf(listener) });
  await using conn = await connectTlsClient(plain, {
    caCerts: [PAIR.cert],
    servername: "localhost",
    minVersion: "TLSv1.3",
    ...e.opts,
  });
  assert.equal(conn.info.protocol, "TLSv1.3");
  await writeAll(conn, enc.encode("data\n"));
  assert.equal(await readLine(conn), "data");
  await conn.closeWrite();
  assert.equal(await conn.read(new Uint8Array(8)), null);
  await server;
});

/** Runs `openssl s_client` once against `port`, saving or offering a session file. */
async function sClient(
  port: number,
  version: "-tls1_2" | "-tls1_3",
  sess: { out?: string; in?: string },
): Promise<string> {
  // -ign_eof keeps s_client reading until our close_notify, so the TLS 1.3 tickets that arrive
  // after the handshake make it into -sess_out.
  const args = ["s_client", "-connect", `127.0.0.1:${port}`, version, "-ign_eof"];
  if (sess.out) args.push("-sess_out", sess.out);
  if (sess.in) args.push("-sess_in", sess.in);
  const out = await new Deno.Command("openssl", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  return dec.decode(out.stdout) + dec.decode(out.stderr);
}

/** A greeting server for resumption tests: records `info.resumed` of each connection. */
function greeter(opts: Partial<Parameters<typeof upgradeToTlsServer>[1]>) {
  const seen: boolean[] = [];
  const server = tlsServer(async (conn) => {
    seen.push(conn.info.resumed);
    await writeAll(conn, enc.encode("220 hi\r\n"));
    await conn.closeWrite();
  }, opts);
  return { ...server, seen };
}

/**
 * Another process serving `count` TLS connections with the same certificate and `ticketKeys`;
 * yields its port, then one "resumed" boolean per connection.
 */
async function otherProcess(
  engine: "node" | "openssl",
  ticketKeys: Uint8Array,
  count: number,
  revokeFfi = false,
): Promise<{ port: number; results: () => Promise<boolean[]> }> {
  const code = `
    import { loadOpenSsl, upgradeToTlsServer } from ${
    JSON.stringify(import.meta.resolve("./mod.ts"))
  };
    const input = JSON.parse(await new Response(Deno.stdin.readable).text());
    const engine = input.engine === "openssl" ? { engine: loadOpenSsl() } : {};
    if (input.revokeFfi) await Deno.permissions.revoke({ name: "ffi" });
    using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    console.log(l.addr.port);
    for (let i = 0; i < input.count; i++) {
      const conn = await upgradeToTlsServer(await l.accept(), {
        cert: input.cert, key: input.key, ticketKeys: new Uint8Array(input.keys), ...engine,
      });
      console.log(conn.info.resumed);
      await conn.write(new TextEncoder().encode("220 hi\\r\\n"));
      await conn.closeWrite();
      conn.close();
      await conn.closed;
    }
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", code],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(enc.encode(JSON.stringify({
    engine,
    count,
    revokeFfi,
    cert: PAIR.cert,
    key: PAIR.key,
    keys: [...ticketKeys],
  })));
  await w.close();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`child exited early: ${text}`);
    text += value;
  }
  const port = Number(text.split("\n")[0]);
  return {
    port,
    results: async () => {
      while (true) {
        const { value, done } = await lines.read();
        if (done) break;
        text += value;
      }
      assert.equal((await child.status).code, 0);
      return text.trim().split("\n").slice(1).map((l) => l === "true");
    },
  };
}

const KEYS = new Uint8Array(48).fill(7);
const OTHER_KEYS = new Uint8Array(48).fill(8);

Deno.test({
  name: "[node:tls] resumption: a session from server A resumes on server B in this process",
  ignore: !HAS_OPENSSL,
  async fn() {
    // The client must be a real TLS client: Deno's node:tls client sessions are opaque tokens
    // tied to host:port, so openssl s_client plays the FTP client here.
    const dir = await Deno.makeTempDir();
    try {
      for (const version of ["-tls1_2", "-tls1_3"] as const) {
        const sess = `${dir}/sess${version}.pem`;
        const a = greeter({ ticketKeys: KEYS });
        assert.match(await sClient(a.port, version, { out: sess }), /^New, /m);
        await a.done;
        a.listener.close();
        const b = greeter({ ticketKeys: OTHER_KEYS }); // even other keys: they are ignored
        const second = await sClient(b.port, version, { in: sess });
        await b.done;
        b.listener.close();
        assert.match(second, /^Reused, /m, `${version}: ${second}`);
        assert.deepEqual([...a.seen, ...b.seen], [false, true], version);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "[node:tls] resumption: another process does not resume (ticketKeys ignored)",
  ignore: !HAS_OPENSSL,
  async fn() {
    // A known limitation of Deno 2.9.6 (rustls keeps one random ticket key per process). If this
    // test fails, Deno started honouring ticketKeys: update the module documentation of shared/tls/mod.ts.
    const dir = await Deno.makeTempDir();
    try {
      const sess = `${dir}/sess.pem`;
      const a = greeter({ ticketKeys: KEYS });
      assert.match(await sClient(a.port, "-tls1_2", { out: sess }), /^New, /m);
      await a.done;
      a.listener.close();
      const b = await otherProcess("node", KEYS, 1);
      assert.match(await sClient(b.port, "-tls1_2", { in: sess }), /^New, /m);
      assert.deepEqual(await b.results(), [false]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "[openssl] resumption: another process with the same ticket keys resumes (TLS 1.2, 1.3)",
  ignore: !HAS_OPENSSL || !OPENSSL,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      // Process B takes four connections: 1.2 and 1.3 with our session, then the same with a
      // session from a server with other keys (which must not resume).
      const b = await otherProcess("openssl", KEYS, 4);
      const offered: string[] = [];
      for (const keys of [KEYS, OTHER_KEYS]) {
        for (const version of ["-tls1_2", "-tls1_3"] as const) {
          const sess = `${dir}/sess${version}-${keys[0]}.pem`;
          const a = greeter({ ticketKeys: keys, engine: OPENSSL! });
          assert.match(await sClient(a.port, version, { out: sess }), /^New, /m);
          await a.done;
          a.listener.close();
          offered.push(await sClient(b.port, version, { in: sess }));
        }
      }
      assert.deepEqual(await b.results(), [true, true, false, false]);
      assert.match(offered[0]!, /^Reused, TLSv1\.2/m);
      assert.match(offered[1]!, /^Reused, TLSv1\.3/m);
      assert.match(offered[2]!, /^New, /m);
      assert.match(offered[3]!, /^New, /m);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "[openssl] resumption: a control-connection session resumes on a data connection elsewhere",
  ignore: !OPENSSL,
  async fn() {
    // Like an FTP client: control connection to the master (this process), data connection to
    // a slave (another process, which also drops its ffi permission after loading OpenSSL)
    // offering the control connection's session.
    const engine = { engine: OPENSSL! };
    const slave = await otherProcess("openssl", KEYS, 1, true);
    const master = greeter({ ticketKeys: KEYS, ...engine });
    const control = await connectTlsClient({ hostname: "127.0.0.1", port: master.port }, {
      caCerts: [PAIR.cert],
      servername: "localhost",
      ...engine,
    });
    assert.equal(await readLine(control), "220 hi"); // TLS 1.3 tickets come with the first data
    const session = control.getSession();
    assert.ok(session && session.length > 0);
    await control[Symbol.asyncDispose]();
    await master.done;
    master.listener.close();
    const data = await connectTlsClient({ hostname: "127.0.0.1", port: slave.port }, {
      caCerts: [PAIR.cert],
      servername: "localhost",
      session,
      ...engine,
    });
    assert.equal(data.info.resumed, true);
    assert.equal(data.info.protocol, "TLSv1.3");
    assert.equal(await readLine(data), "220 hi");
    await data[Symbol.asyncDispose]();
    assert.deepEqual(await slave.results(), [true]);
    assert.deepEqual(master.seen, [false]);
  },
});

Deno.test("certFingerprint: sha256 of the DER certificate, lowercase hex without colons", () => {
  const x509 = new X509Certificate(PAIR.cert);
  const expected = "sha256:" + x509.fingerprint256.replaceAll(":", "").toLowerCase();
  assert.equal(certFingerprint(PAIR.cert), expected);
  assert.equal(PAIR.fingerprint, expected);
  assert.throws(() => certFingerprint("not a pem"), SyntaxError);
});

Deno.test("createSelfSignedCert: EC P-256, 10 years, SAN, CA:FALSE, key matches", () => {
  const pair = createSelfSignedCert("ftp.example.org", { altNames: ["::1"] });
  const x509 = new X509Certificate(pair.cert);
  assert.equal(x509.subject, "CN=ftp.example.org");
  assert.equal(x509.issuer, "CN=ftp.example.org");
  assert.equal(x509.ca, false);
  assert.equal(
    x509.subjectAltName,
    "DNS:ftp.example.org, IP Address:127.0.0.1, IP Address:::1",
  );
  assert.ok(x509.verify(x509.publicKey));
  assert.ok(x509.checkPrivateKey(createPrivateKey(pair.key)));
  assert.equal(x509.publicKey.asymmetricKeyType, "ec");
  const years = (Date.parse(x509.validTo) - Date.now()) / (365.25 * 24 * 3600 * 1000);
  assert.ok(years > 9.9 && years < 10.1, `validity ${years} years`);
  assert.ok(Date.parse(x509.validFrom) < Date.now());
  // An IP address as the common name goes into the SAN as an IP.
  const ip = new X509Certificate(createSelfSignedCert("192.0.2.7").cert);
  assert.equal(ip.subjectAltName, "IP Address:192.0.2.7, IP Address:127.0.0.1");
});

Deno.test({
  name: "createSelfSignedCert: openssl parses the certificate",
  ignore: !HAS_OPENSSL,
  async fn() {
    const child = new Deno.Command("openssl", {
      args: ["x509", "-noout", "-text"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(enc.encode(PAIR.cert));
    await w.close();
    const out = await child.output();
    const text = dec.decode(out.stdout);
    assert.ok(out.success, dec.decode(out.stderr));
    assert.match(text, /CA:FALSE/);
    assert.match(text, /DNS:localhost, IP Address:127\.0\.0\.1/);
    assert.match(text, /TLS Web Server Authentication/);
    assert.match(text, /ecdsa-with-SHA256/);
  },
});

Deno.test("ensureSelfSignedCert: creates once (key 0600), then loads the same pair", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const sub = `${dir}/tls`;
    const first = await ensureSelfSignedCert(sub, "localhost");
    assert.match(first.fingerprint, /^sha256:[0-9a-f]{64}$/);
    assert.equal(await Deno.readTextFile(`${sub}/cert.pem`), first.cert);
    assert.equal(await Deno.readTextFile(`${sub}/key.pem`), first.key);
    if (Deno.build.os !== "windows") {
      assert.equal((await Deno.stat(`${sub}/key.pem`)).mode! & 0o777, 0o600);
    }
    assert.deepEqual([...Deno.readDirSync(sub)].map((e) => e.name).sort(), [
      "cert.pem",
      "key.pem",
    ]);
    const second = await ensureSelfSignedCert(sub, "other-name");
    assert.deepEqual(second, first);
    // The created pair serves TLS.
    const { port, done } = tlsServer(async (conn) => {
      await writeAll(conn, enc.encode("ok\n"));
    }, { cert: first.cert, key: first.key });
    const client = await connectTlsClient({ hostname: "127.0.0.1", port }, {
      caCerts: [first.cert],
    });
    assert.equal(await readLine(client), "ok");
    await client[Symbol.asyncDispose]();
    await done;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ensureSelfSignedCert: refuses a lone file and a key that does not match", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/cert.pem`, PAIR.cert);
    await assert.rejects(ensureSelfSignedCert(dir, "localhost"), /only one of/);
    await Deno.writeTextFile(`${dir}/key.pem`, createSelfSignedCert("x").key);
    await assert.rejects(ensureSelfSignedCert(dir, "localhost"), /does not match/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A CA and a leaf signed by it (RSA, PKCS#1 key), made with the openssl CLI. */
async function opensslChain(dir: string): Promise<{ ca: string; chain: string; key: string }> {
  const run = async (args: string[]) => {
    const out = await new Deno.Command("openssl", { args, cwd: dir, stderr: "piped" }).output();
    assert.ok(out.success, dec.decode(out.stderr));
  };
  await run([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=Test CA",
  ]);
  await run(["genrsa", "-traditional", "-out", "leaf.key", "2048"]);
  await run(["req", "-new", "-key", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost"]);
  await Deno.writeTextFile(
    `${dir}/ext.cnf`,
    "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
  );
  await run([
    "x509",
    "-req",
    "-in",
    "leaf.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
    "-out",
    "leaf.pem",
  ]);
  const read = (name: string) => Deno.readTextFile(`${dir}/${name}`);
  return {
    ca: await read("ca.pem"),
    chain: (await read("leaf.pem")) + (await read("ca.pem")),
    key: await read("leaf.key"),
  };
}

testEachEngine("a certificate chain and an RSA PKCS#1 key from openssl work", async (e) => {
  const dir = await Deno.makeTempDir();
  try {
    const { ca, chain, key } = await opensslChain(dir);
    assert.match(key, /BEGIN RSA PRIVATE KEY/);
    const { port, done } = tlsServer(async (conn) => {
      await writeAll(conn, enc.encode("ok\n"));
    }, { cert: chain, key, ...e.opts });
    const client = await connectTlsClient({ hostname: "127.0.0.1", port }, {
      caCerts: [ca],
      servername: "localhost",
      ...e.opts,
    });
    assert.equal(await readLine(client), "ok");
    await client[Symbol.asyncDispose]();
    await done;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}, true);
