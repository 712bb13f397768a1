/**
 * Ratio and credits, and simultaneous-transfer limits, end to end: a user with ratio 3 who
 * uploaded 1 MiB may download 3 MiB and not 3 MiB + 1 byte (refused before any byte moves), and
 * a user at max_uploads is refused the next upload before its 150.
 */

import assert from "node:assert/strict";
import { FtpControl, makeSite, poll, randomBytes, type Site } from "../testing/mod.ts";

const MiB = 1024 * 1024;

async function showField(site: Site, user: string, field: string): Promise<string> {
  const r = await site.drftpd(["user", "show", user]);
  assert.ok(r.success, r.stderr);
  return new RegExp(`^${field}: (.*)$`, "m").exec(r.stdout)![1]!;
}

Deno.test("ratio 3: 1 MiB up earns 3 MiB down, not a byte more", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1" }],
    logLevel: "info",
  });
  await using admin = await site.control();
  await admin.store("/big.bin", randomBytes(3 * MiB + 1));
  await admin.store("/three.bin", randomBytes(3 * MiB));
  await admin.store("/one.bin", randomBytes(1));
  await site.addUser("bob", "pw");
  const set = await site.drftpd(["user", "change", "bob", "ratio", "3"]);
  assert.ok(set.success, set.stderr);

  await using bob = await FtpControl.login({ host: site.host, port: site.ftpPort }, {
    user: "bob",
    pass: "pw",
  });
  // no credits yet
  await bob.pasv("RETR /one.bin");
  let r = await bob.send("RETR /one.bin");
  assert.equal(r.code, 550);
  assert.match(r.text, /^Not enough credits/);

  await bob.store("/up.bin", randomBytes(MiB));
  assert.equal(await showField(site, "bob", "credits"), String(3 * MiB));

  await bob.pasv("RETR /big.bin");
  r = await bob.send("RETR /big.bin");
  assert.equal(r.code, 550, "3 MiB + 1 byte allowed");
  assert.match(r.text, /^Not enough credits: \/big\.bin needs 3145729 bytes, bob has 3145728/);
  assert.equal(await showField(site, "bob", "credits"), String(3 * MiB), "refusal charged");

  const { data } = await bob.retrieve("/three.bin");
  assert.equal(data.length, 3 * MiB);
  // A download's statistics are written while its 226 goes out; the session's next command
  // waits for them, so after it another process reads them as recorded.
  assert.equal((await bob.send("PWD")).code, 257);
  assert.equal(await showField(site, "bob", "credits"), "0");
  assert.match(
    await showField(site, "bob", "stats_all"),
    /^bytes_up=1048576 bytes_down=3145728 files_up=1 files_down=1$/,
  );
  await bob.pasv("RETR /one.bin");
  assert.equal((await bob.send("RETR /one.bin")).code, 550);

  // ratio 0 (the default): unlimited
  await site.drftpd(["user", "change", "bob", "ratio", "0"]);
  assert.equal((await bob.retrieve("/big.bin")).data.length, 3 * MiB + 1);
});

Deno.test("max_uploads: the extra upload is refused before 150", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1" }],
    logLevel: "info",
  });
  await site.addUser("eve", "pw");
  const set = await site.drftpd(["user", "change", "eve", "max_uploads", "1"]);
  assert.ok(set.success, set.stderr);
  const at = { host: site.host, port: site.ftpPort };
  await using one = await FtpControl.login(at, { user: "eve", pass: "pw" });
  await using two = await FtpControl.login(at, { user: "eve", pass: "pw" });

  // the first upload stays open: its data connection is not closed yet
  const ep = await one.pasv("STOR /a.bin");
  const data = await Deno.connect({ hostname: ep.host, port: ep.port });
  assert.equal((await one.send("STOR /a.bin")).code, 150);
  await data.write(randomBytes(1000));

  await two.pasv("STOR /b.bin");
  const refused = await two.send("STOR /b.bin");
  assert.equal(refused.code, 450);
  assert.equal(refused.text, "Too many simultaneous uploads for eve (max 1)");

  data.close();
  assert.equal((await one.read()).code, 226);
  await two.store("/b.bin", randomBytes(10)); // the place is free again
});

Deno.test("an aborted download is charged only the bytes it moved", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1" }],
    logLevel: "info",
  });
  await using admin = await site.control();
  const size = 32 * MiB;
  await admin.store("/huge.bin", randomBytes(size));
  await site.addUser("cat", "pw");
  for (const [f, v] of [["ratio", "1"], ["credits", "100M"]]) {
    const r = await site.drftpd(["user", "change", "cat", f!, v!]);
    assert.ok(r.success, r.stderr);
  }
  await using cat = await FtpControl.login({ host: site.host, port: site.ftpPort }, {
    user: "cat",
    pass: "pw",
  });
  const ep = await cat.pasv("RETR /huge.bin");
  const data = await Deno.connect({ hostname: ep.host, port: ep.port });
  assert.equal((await cat.send("RETR /huge.bin")).code, 150);
  // a slow reader: the slave reports progress about once a second while bytes move
  let reading = true;
  const reader = (async () => {
    const buf = new Uint8Array(256 * 1024);
    while (reading && (await data.read(buf).catch(() => null)) !== null) {
      await new Promise((ok) => setTimeout(ok, 50));
    }
  })();
  await poll(async () => {
    const who = await admin.send("SITE WHO");
    const m = / user=cat .* bytes=(\d+)/.exec(who.lines.join("\n"));
    return m && Number(m[1]) > 0 ? true : undefined;
  }, { describe: () => "a progress report of the download" });
  reading = false;
  await reader;
  const abor = await cat.send("ABOR");
  data.close();
  const replies = [abor.code, ...(abor.code === 426 ? [(await cat.read()).code] : [])];
  assert.ok(replies.includes(426) || replies.includes(226), replies.join(","));
  const credits = await poll(async () => {
    const c = Number(await showField(site, "cat", "credits"));
    return c < 100 * MiB ? c : undefined;
  }, { describe: () => "the aborted download to be charged" });
  const charged = 100 * MiB - credits;
  assert.ok(charged > 0 && charged < size, `charged ${charged} of ${size}`);
});
