/**
 * Unit tests of the e2e harness itself: port helpers, the 227 parser, the curl trace parser and
 * the raw FTP control client against a tiny scripted in-process server.
 */

import assert from "node:assert/strict";
import {
  crc32Hex,
  freePort,
  freePortRange,
  FtpControl,
  parse227,
  parse229,
  pasvHostsFromCurlTrace,
  run,
} from "./mod.ts";

Deno.test("freePort and freePortRange give bindable ports", () => {
  const port = freePort();
  assert.ok(port > 0 && port < 65536);
  using l = Deno.listen({ hostname: "127.0.0.1", port });
  assert.equal((l.addr as Deno.NetAddr).port, port);

  const range = freePortRange(5);
  assert.equal(range.to - range.from, 4);
  const held = [];
  for (let p = range.from; p <= range.to; p++) {
    held.push(Deno.listen({ hostname: "0.0.0.0", port: p }));
  }
  for (const h of held) h.close();
});

Deno.test("parse227 and curl traces", () => {
  assert.deepEqual(parse227("Entering Passive Mode (127,0,0,2,195,80)."), {
    host: "127.0.0.2",
    port: 195 * 256 + 80,
  });
  assert.throws(() => parse227("nope"), SyntaxError);
  assert.equal(parse229("Entering Extended Passive Mode (|||50123|)"), 50123);
  assert.throws(() => parse229("Entering Extended Passive Mode"), SyntaxError);
  const trace = "> PASV\r\n< 227 Entering Passive Mode (127,0,0,3,1,2)\n< 226 ok\n";
  assert.deepEqual(pasvHostsFromCurlTrace(trace.replaceAll("\r", "")), [{
    host: "127.0.0.3",
    port: 258,
  }]);
  assert.equal(crc32Hex(new TextEncoder().encode("hello")), "3610a686");
});

Deno.test("FtpControl reads single and multi-line replies", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const server = (async () => {
    using conn = await listener.accept();
    const enc = new TextEncoder();
    const write = (s: string) => conn.write(enc.encode(s));
    await write("220-Welcome\r\n220-second line\r\n220 ready\r\n");
    const buf = new Uint8Array(1024);
    let pending = "";
    while (true) {
      const n = await conn.read(buf);
      if (n === null) return;
      pending += new TextDecoder().decode(buf.subarray(0, n));
      let nl;
      while ((nl = pending.indexOf("\r\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 2);
        if (line.startsWith("USER")) await write("331 pass please\r\n");
        else if (line.startsWith("PASS")) await write("230 ok\r\n");
        else if (line === "TYPE I") await write("200 binary\r\n");
        // a continuation line that looks like another code must not end the reply
        else if (line === "SITE SLAVES") {
          await write("200-Slaves:\r\n a online 1 GiB\r\n201 b offline\r\n200-x\r\n200 done\r\n");
        } else if (line === "QUIT") {
          await write("221 bye\r\n");
          return;
        } else await write("500 unknown\r\n");
      }
    }
  })();

  {
    await using ftp = await FtpControl.login({ host: "127.0.0.1", port }, { user: "u", pass: "p" });
    assert.equal(ftp.greeting.code, 220);
    assert.equal(ftp.greeting.lines.length, 3);
    const r = await ftp.send("SITE SLAVES");
    assert.equal(r.code, 200);
    assert.deepEqual(r.lines, [
      "200-Slaves:",
      " a online 1 GiB",
      "201 b offline",
      "200-x",
      "200 done",
    ]);
    assert.deepEqual(await ftp.send("NOOP"), {
      code: 500,
      text: "unknown",
      lines: ["500 unknown"],
    });
  }
  await server;
});

Deno.test("run reports exit codes, output and timeouts", async () => {
  const ok = await run("sh", ["-c", "echo out; echo err >&2; exit 3"]);
  assert.deepEqual([ok.code, ok.stdout, ok.stderr, ok.timedOut], [3, "out\n", "err\n", false]);
  const slow = await run("sleep", ["10"], { timeoutMs: 200 });
  assert.equal(slow.timedOut, true);
  assert.equal(slow.success, false);
  const fed = await run("cat", [], { stdin: "abc" });
  assert.equal(fed.stdout, "abc");
});
