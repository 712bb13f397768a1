/**
 * PASV and EPSV without PRET over in-memory slaves: which slave the session's hint (its last
 * SIZE, MDTM, MLST, CWD) sends them to, and EPSV only where the slave shares the control address.
 */
import assert from "node:assert/strict";
import { MasterDouble, type SlaveDouble } from "./_session_double.ts";

async function twoSlaves(toml = ""): Promise<MasterDouble> {
  const m = await MasterDouble.create(toml);
  await m.addSlave("s1");
  await m.addSlave("s2");
  await m.filelist.mkdir("/d", "alice", "users");
  for (const [name, holder] of [["f.bin", "s2"], ["g.bin", "s1"]]) {
    await m.filelist.putFile(`/d/${name}`, {
      size: 10,
      mtime: 1_700_000_000_000,
      owner: "alice",
      group: "users",
      crc32: null,
      slaves: [holder!],
      xferMs: 0,
    });
  }
  return m;
}

/** The hint after the last command's dispatch has ended (a reply is written before it ends). */
async function hintOf(
  c: { send(line: string): Promise<{ code: number }> },
  s: { hint: string | null },
) {
  assert.equal((await c.send("NOOP")).code, 200);
  return s.hint;
}

function listens(m: MasterDouble): Record<string, number> {
  return Object.fromEntries(
    m.slaves.map((s: SlaveDouble) => [s.handle.name, s.of("listen").length]),
  );
}

Deno.test("PASV without PRET asks a holder of the file the session looked at last", async () => {
  await using m = await twoSlaves();
  const { client, session } = await m.connect("alice");
  assert.equal((await client.send("SIZE /d/f.bin")).code, 213);
  assert.equal(await hintOf(client, session), "/d/f.bin");
  assert.equal((await client.send("PASV")).code, 227);
  assert.deepEqual(listens(m), { s1: 0, s2: 1 });

  assert.equal((await client.send("MDTM /d/g.bin")).code, 213);
  assert.equal((await client.send("PASV")).code, 227);
  assert.deepEqual(listens(m), { s1: 1, s2: 1 });

  assert.equal((await client.send("MLST /d/f.bin")).code, 250);
  // a command that failed leaves the hint as it was
  assert.equal((await client.send("SIZE /d/missing.bin")).code, 550);
  assert.equal(await hintOf(client, session), "/d/f.bin");
  assert.equal((await client.send("TYPE I")).code, 200);
  assert.equal((await client.send("PASV")).code, 227);
  assert.deepEqual(listens(m), { s1: 1, s2: 2 });

  // the holder sends it: "direct"
  m.slaves[1]!.answer = (req) =>
    req.type === "listen"
      ? { host: "127.0.0.1", port: 40000 }
      : { bytes: 10, size: 10, crc32: 1, crcWhole: true, ms: 1, mtime: 0 };
  assert.equal((await client.send("RETR /d/f.bin")).code, 150);
  const done = await client.read();
  assert.equal(done.code, 226, done.lines.join(" | "));
  assert.match(done.lines[0]!, /via s2; direct$/);
  assert.equal(m.slaves[1]!.of("transfer").length, 1);

  // a folder: the best slave for an upload there
  assert.equal((await client.send("CWD /d")).code, 250);
  assert.equal(await hintOf(client, session), "/d");
  assert.equal((await client.send("CDUP")).code, 250);
  assert.equal(await hintOf(client, session), "/");
  assert.equal((await client.send("PASV")).code, 227);
  const total = listens(m);
  assert.equal(total.s1! + total.s2!, 4);
});

Deno.test("EPSV without PRET: served where the slave shares the control address, else 425", async () => {
  await using m = await twoSlaves();
  const { client } = await m.connect("alice");
  assert.equal((await client.send("SIZE /d/f.bin")).code, 213);
  const here = await client.send("EPSV");
  assert.equal(here.code, 229, here.lines.join(" | "));
  assert.match(here.lines[0]!, /\(\|\|\|40000\|\)/);

  const s2 = m.slaves[1]!;
  s2.answer = (req) => req.type === "listen" ? { host: "127.0.0.2", port: 40001 } : {};
  const there = await client.send("EPSV");
  assert.equal(there.code, 425);
  assert.match(there.lines[0]!, /EPSV cannot point at slave s2 \(127\.0\.0\.2\); use PASV/);
  // the port s2 opened for it is given back
  const listen = s2.of("listen").at(-1)!;
  assert.ok(
    s2.of("abort").some((a) => "xfer" in a && "xfer" in listen && a.xfer === listen.xfer),
    "the refused EPSV's port was not released",
  );
});

Deno.test('EPSV without PRET, epsv_without_pret = "master": the master serves what a slave elsewhere would', async () => {
  await using m = await twoSlaves(
    `[ftp]\nepsv_without_pret = "master"\npassive_ports = "41000-41009"`,
  );
  const { client } = await m.connect("alice");
  assert.equal((await client.send("SIZE /d/f.bin")).code, 213);
  const s2 = m.slaves[1]!;
  s2.answer = (req) => req.type === "listen" ? { host: "127.0.0.2", port: 40001 } : {};
  const r = await client.send("EPSV");
  assert.equal(r.code, 229, r.lines.join(" | "));
  const port = Number(/\(\|\|\|(\d+)\|\)/.exec(r.lines[0]!)![1]);
  assert.ok(port >= 41000 && port <= 41009, `EPSV port ${port} is not the master's`);
  const listen = s2.of("listen").at(-1)!;
  assert.ok(
    s2.of("abort").some((a) => "xfer" in a && "xfer" in listen && a.xfer === listen.xfer),
    "the port s2 opened was not released",
  );
  assert.equal((await client.send("ABOR")).code, 225);
});

Deno.test("PASV without PRET: a port number taken on the master makes the slave pick another", async () => {
  await using m = await twoSlaves();
  const { client } = await m.connect("alice");
  assert.equal((await client.send("SIZE /d/f.bin")).code, 213);
  // the master's own port of that number is busy (another slave's proxy, any program)
  using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const taken = (busy.addr as Deno.NetAddr).port;
  const spare = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const free = (spare.addr as Deno.NetAddr).port;
  spare.close();
  const s2 = m.slaves[1]!;
  const ports = [taken, free];
  s2.answer = (req) => req.type === "listen" ? { host: "127.0.0.2", port: ports.shift()! } : {};
  const r = await client.send("PASV");
  assert.equal(r.code, 227, r.lines.join(" | "));
  const [a, b] = [Math.floor(free / 256), free % 256];
  assert.match(r.lines[0]!, new RegExp(`\\(127,0,0,2,${a},${b}\\)`));
  const first = s2.of("listen")[0]!;
  assert.ok(
    s2.of("abort").some((x) => "xfer" in x && "xfer" in first && x.xfer === first.xfer),
    "the first port was not released",
  );
  assert.equal((await client.send("ABOR")).code, 225);
});
