/**
 * Transfers over an in-memory slave: how a slave's answer becomes the reply after 150 (the one
 * mapping in errors.ts), and the one slave choice's error text.
 */
import assert from "node:assert/strict";
import { deadline } from "../../shared/timers.ts";
import { MasterDouble, type SlaveAnswer } from "./_session_double.ts";

async function siteWithFile(): Promise<MasterDouble> {
  const m = await MasterDouble.create();
  await m.addSlave("s1");
  await m.filelist.mkdir("/d", "alice", "users");
  await m.filelist.putFile("/d/f.bin", {
    size: 10,
    mtime: 1_700_000_000_000,
    owner: "alice",
    group: "users",
    crc32: null,
    slaves: ["s1"],
    xferMs: 0,
  });
  return m;
}

Deno.test("RETR through a slave: its answers map to replies in one place", async (t) => {
  await using m = await siteWithFile();
  const slave = m.slaves[0]!;
  const { client } = await m.connect("alice");
  const cases: [string, SlaveAnswer, number, RegExp][] = [
    ["done", { bytes: 10, size: 10, crc32: 1, crcWhole: true, ms: 1, mtime: 0 }, 226, /via s1/],
    ["io", { error: "io", message: "disk on fire" }, 426, /Transfer failed: .*disk on fire/],
    ["data connection", { error: "data_connection", message: "no client" }, 426, /no client/],
    ["mismatch", { error: "mismatch", message: "other CRC32" }, 426, /other CRC32/],
    ["not found", { error: "not_found", message: "gone from disk" }, 550, /gone from disk/],
    ["timeout", { error: "timeout", message: "nobody came" }, 425, /nobody came/],
  ];
  for (const [name, answer, code, text] of cases) {
    await t.step(name, async () => {
      slave.answer = (req) => req.type === "listen" ? { host: "127.0.0.1", port: 40000 } : answer;
      assert.equal((await client.send("PRET RETR /d/f.bin")).code, 200);
      const pasv = await client.send("PASV");
      assert.equal(pasv.code, 227);
      assert.match(pasv.lines[0]!, /\(127,0,0,1,156,64\)/);
      assert.equal((await client.send("RETR /d/f.bin")).code, 150);
      const done = await client.read();
      assert.equal(done.code, code, done.lines.join(" | "));
      assert.match(done.lines[0]!, text);
    });
  }
  assert.equal(slave.of("transfer").length, cases.length);
});

Deno.test("a slave gone mid-transfer is 426; no holder online is 450 naming the holders", async () => {
  await using m = await siteWithFile();
  const slave = m.slaves[0]!;
  let started!: () => void;
  const transferring = new Promise<void>((r) => (started = r));
  slave.answer = (req) => {
    if (req.type === "listen") return { host: "127.0.0.1", port: 40000 };
    started();
    return new Promise<SlaveAnswer>(() => {}); // never answers: the link drops first
  };
  const { client } = await m.connect("alice");
  await client.send("PRET RETR /d/f.bin");
  assert.equal((await client.send("PASV")).code, 227);
  assert.equal((await client.send("RETR /d/f.bin")).code, 150);
  await transferring;
  await slave.close();
  const gone = await client.read();
  assert.equal(gone.code, 426, gone.lines.join(" | "));
  assert.match(gone.lines[0]!, /s1.*went offline/);

  await client.send("PRET RETR /d/f.bin");
  const none = await client.send("PASV");
  assert.equal(none.code, 450);
  assert.equal(none.lines[0], "/d/f.bin is not available: its slave (s1) is offline");
});

Deno.test("a download's 226 does not wait for its statistics write; the session's next command does", async () => {
  await using m = await siteWithFile();
  m.slaves[0]!.answer = (req) =>
    req.type === "listen"
      ? { host: "127.0.0.1", port: 40000 }
      : { bytes: 10, size: 10, crc32: 0, crcWhole: false, ms: 1, mtime: 0 };
  const order: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const users = m.services.users;
  const record = users.recordTransfer.bind(users);
  users.recordTransfer = async (name, direction, bytes, file) => {
    await gate; // a slow KV commit
    const fresh = await record(name, direction, bytes, file);
    order.push(`recorded ${direction} ${bytes}`);
    return fresh;
  };
  const { client, session } = await m.connect("alice");
  await client.send("PRET RETR /d/f.bin");
  assert.equal((await client.send("PASV")).code, 227);
  assert.equal((await client.send("RETR /d/f.bin")).code, 150);
  const done = await deadline(client.read(), {
    ms: 10_000,
    what: "the 226 while the write is held",
  })
    .catch((e) => {
      release(); // so the session can end
      throw e;
    });
  assert.equal(done.code, 226);
  assert.equal(session.running, null, "the transfer's place is free by its 226 (SITE WHO, limits)");
  // Once the session has read PWD, let the write go after this turn of the event loop: a PWD that
  // did not wait would have been answered by then.
  let last = session.lastCommand;
  Object.defineProperty(session, "lastCommand", {
    get: () => last,
    set: (v: typeof last) => {
      last = v;
      if (v.verb === "PWD") setTimeout(release, 0);
    },
  });
  const pwd = await client.send("PWD");
  order.push(`replied ${pwd.code}`);
  assert.deepEqual(order, ["recorded down 10", "replied 257"]);
});
