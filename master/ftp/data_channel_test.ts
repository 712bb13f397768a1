import assert from "node:assert/strict";
import { ActiveChannel, PassiveChannel } from "./data_channel.ts";

const RANGE = { from: 0, to: 0 }; // port 0: any free port

/** Resolves with what the peer reads until EOF: the bytes, or "reset" when the read failed. */
async function readToEnd(conn: Deno.Conn): Promise<string> {
  const buf = new Uint8Array(1024);
  let text = "";
  try {
    while (true) {
      const n = await conn.read(buf);
      if (n === null) return text;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
  } catch {
    return "reset";
  }
}

Deno.test("PassiveChannel: connect() hands the connection over, close() leaves it open", async () => {
  const channel = new PassiveChannel("127.0.0.1", RANGE, null);
  using client = await Deno.connect({ hostname: "127.0.0.1", port: channel.port });
  const conn = await channel.connect();
  // Releasing the channel must not cut a connection whose owner still has to end it (for TLS:
  // close_notify first).
  channel.close();
  await conn.write(new TextEncoder().encode("still open"));
  conn.close();
  assert.equal(await readToEnd(client), "still open");
});

Deno.test("PassiveChannel: close() before connect() drops the client's connection", async () => {
  const channel = new PassiveChannel("127.0.0.1", RANGE, null);
  using client = await Deno.connect({ hostname: "127.0.0.1", port: channel.port });
  channel.close();
  // accepted (then closed: EOF) or still in the backlog of the closed listener (reset)
  assert.ok(["", "reset"].includes(await readToEnd(client)));
  await assert.rejects(channel.connect());
});

Deno.test("ActiveChannel: connect() hands over; a close() during the dial drops the result", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  const a = new ActiveChannel("127.0.0.1", port);
  const conn = await a.connect();
  using peer = await listener.accept();
  a.close();
  await conn.write(new TextEncoder().encode("mine"));
  conn.close();
  assert.equal(await readToEnd(peer), "mine");

  const b = new ActiveChannel("127.0.0.1", port);
  const dialling = b.connect();
  b.close();
  await assert.rejects(dialling, /aborted/);
  using late = await listener.accept();
  assert.equal(await readToEnd(late), "");
});
