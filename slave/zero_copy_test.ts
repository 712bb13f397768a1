import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { readAll, writeAll } from "../shared/bytes.ts";
import { deadline } from "../shared/timers.ts";
import { SlaveError } from "./_errors.ts";
import { type DataEngine, type MoveHooks, nativeEngine } from "./data_engine.ts";
import { DataLink } from "./transfer.ts";
import { loadZeroCopy, parseSockAddr } from "./zero_copy.ts";

Deno.test("parseSockAddr() reads sockaddr_in and sockaddr_in6", () => {
  const v4 = new Uint8Array(16);
  v4.set([2, 0, 0x1f, 0x90, 127, 0, 0, 2]);
  assert.deepEqual(parseSockAddr(v4), { host: "127.0.0.2", port: 8080 });
  const v6 = new Uint8Array(28);
  v6.set([10, 0, 0, 21]);
  v6.set([0x20, 0x01, 0x0d, 0xb8], 8);
  v6[23] = 1;
  assert.deepEqual(parseSockAddr(v6), { host: "2001:db8::1", port: 21 });
  const mapped = new Uint8Array(28);
  mapped.set([10, 0, 0, 21]);
  mapped.set([0xff, 0xff, 10, 0, 0, 7], 18);
  assert.deepEqual(parseSockAddr(mapped), { host: "10.0.0.7", port: 21 });
  assert.equal(parseSockAddr(new Uint8Array([1, 0, 0, 0])), null); // AF_UNIX
});

/** A connected pair on loopback: [the server's accepted side, the client side]. */
async function pair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [server, client] = await Promise.all([
    listener.accept(),
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
  ]);
  return [server, client];
}

function hooks(signal: AbortSignal): MoveHooks {
  const fail = (e: unknown) => new SlaveError("io", String(e));
  return { signal, readError: fail, writeError: fail, progress: () => {} };
}

const engines: DataEngine[] = [nativeEngine];
if (Deno.build.os === "linux") engines.push(loadZeroCopy());

for (const engine of engines) {
  Deno.test(`${engine.name} engine: sends from an offset and receives with CRC32`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const bytes = crypto.getRandomValues(new Uint8Array(60_000));
      const whole = new Uint8Array(3 * bytes.length);
      for (let i = 0; i < 3; i++) whole.set(bytes, i * bytes.length);
      const path = `${dir}/f.bin`;
      await Deno.writeFile(path, whole);

      const [server, client] = await pair();
      const ctl = new AbortController();
      {
        using data = new DataLink(ctl.signal, server);
        using file = await Deno.open(path);
        const offset = 12_345;
        const sent = engine.sendFile(data, file, {
          offset,
          length: whole.length - offset,
          realPath: path,
        }, hooks(ctl.signal));
        const got = readAll(client, 1 << 20);
        const moved = await sent;
        data.finish();
        assert.equal(moved.bytes, whole.length - offset);
        assert.deepEqual(await got, whole.subarray(offset));
        assert.equal(moved.crc, null, "sends compute no CRC32");
        if (engine.name === "zero_copy") assert.equal(moved.path, "sendfile");
      }
      client.close();

      const [server2, client2] = await pair();
      {
        using data = new DataLink(ctl.signal, server2);
        const target = `${dir}/up.bin`;
        using file = await Deno.open(target, { write: true, create: true, truncate: true });
        const received = engine.receiveFile(data, file, { offset: 0, realPath: target }, {
          ...hooks(ctl.signal),
        });
        await writeAll(client2, whole);
        client2.close();
        const moved = await received;
        data.finish();
        assert.equal(moved.bytes, whole.length);
        assert.equal(moved.crc, crc32(whole));
        assert.deepEqual(await Deno.readFile(target), whole);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`${engine.name} engine: an abort releases a send the peer stopped reading`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/big.bin`;
      const size = 64 * 1024 * 1024; // far more than the socket buffers hold
      {
        using f = await Deno.open(path, { write: true, create: true });
        await f.truncate(size);
      }
      const [server, client] = await pair();
      const ctl = new AbortController();
      try {
        using data = new DataLink(ctl.signal, server);
        using file = await Deno.open(path);
        const sent = engine.sendFile(data, file, { offset: 0, length: size, realPath: path }, {
          ...hooks(ctl.signal),
          progress: () => {},
        });
        // The client reads one chunk, then nothing: the send blocks on a full socket buffer.
        assert.ok((await client.read(new Uint8Array(65536)))! > 0);
        ctl.abort();
        await assert.rejects(sent);
      } finally {
        client.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test({
  name: "zero_copy engine: connections adopted at accept each send through their own socket",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const engine = loadZeroCopy();
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/f.bin`;
      const bytes = crypto.getRandomValues(new Uint8Array(60_000));
      await Deno.writeFile(path, bytes);
      const [serverA, clientA] = await pair();
      const [serverB, clientB] = await pair();
      engine.adopt?.(serverA);
      engine.adopt?.(serverB);
      const ctl = new AbortController();
      for (const [server, client] of [[serverB, clientB], [serverA, clientA]] as const) {
        using data = new DataLink(ctl.signal, server);
        using file = await Deno.open(path);
        const got = readAll(client, 1 << 20);
        const moved = await engine.sendFile(
          data,
          file,
          { offset: 0, length: bytes.length, realPath: path },
          hooks(ctl.signal),
        );
        data.finish();
        assert.equal(moved.path, "sendfile");
        const arrived = await deadline(got, { ms: 10_000, what: "the bytes at this client" });
        assert.deepEqual(arrived, bytes, "the bytes reached this connection's own client");
        client.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
