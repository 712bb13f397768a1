/**
 * SITE administration: users added, re-passworded, deleted and restored over FTP take effect at
 * the next login; group admins manage only their group within their slots; SITE HELP lists only
 * what the caller may run; SITE KICK ends a user's sessions; SITE WHO shows a running transfer
 * whose speed changes over time.
 */

import assert from "node:assert/strict";
import { FtpControl, makeSite, poll, randomBytes, type Site } from "../testing/mod.ts";

async function tryLogin(site: Site, user: string, pass: string): Promise<number> {
  await using ftp = await FtpControl.connect({ host: site.host, port: site.ftpPort });
  const r = await ftp.send(`USER ${user}`);
  return r.code === 331 ? (await ftp.send(`PASS ${pass}`)).code : r.code;
}

function login(site: Site, user: string, pass: string) {
  return FtpControl.login({ host: site.host, port: site.ftpPort }, { user, pass });
}

/** Sends `line`, expects 200; `text` is the reply's lines without code or continuation space. */
async function ok(ftp: FtpControl, line: string) {
  const r = await ftp.send(line);
  assert.equal(r.code, 200, `${line}: ${r.lines.join(" | ")}`);
  return { ...r, text: r.lines.map((l) => l.replace(/^(\d{3}[- ]| )/, "")).join("\n") };
}

Deno.test("SITE user administration by admins, group admins and users", async () => {
  await using site = await makeSite({
    slaves: [],
    logLevel: "info",
    masterExtra: "failed_login_delay_ms = 0\nban_after_failures = 0",
  });
  await using admin = await site.control();

  await ok(admin, "SITE ADDUSER carol pw1 *@127.0.0.*");
  assert.equal(await tryLogin(site, "carol", "pw1"), 230);
  await ok(admin, "SITE CHPASS carol pw2");
  assert.equal(await tryLogin(site, "carol", "pw1"), 530);
  assert.equal(await tryLogin(site, "carol", "pw2"), 230);
  const shown = await ok(admin, "SITE USER carol");
  assert.match(shown.text, /^masks: \*@127\.0\.0\.\*$/m);
  await ok(admin, "SITE DELIP carol *@127.0.0.*");
  await ok(admin, "SITE ADDIP carol *@10.0.0.0/8");
  assert.equal(await tryLogin(site, "carol", "pw2"), 530);
  await ok(admin, "SITE DELIP carol *@10.0.0.0/8");
  await ok(admin, "SITE GIVE carol 2M");
  await ok(admin, "SITE TAKE carol 1M");
  assert.match((await ok(admin, "SITE USER carol")).text, /^credits: 1048576$/m);
  await ok(admin, "SITE CHANGE carol max_logins 3");
  assert.match((await ok(admin, "SITE USERS")).text, /^carol groups=users admin=false/m);
  assert.equal((await admin.send("SITE CHANGE carol colour red")).code, 501);
  assert.equal((await admin.send("SITE CHPASS nobody x")).code, 550);

  await ok(admin, "SITE DELUSER carol");
  assert.equal(await tryLogin(site, "carol", "pw2"), 530);
  await ok(admin, "SITE READD carol");
  assert.equal(await tryLogin(site, "carol", "pw2"), 230);

  // a user: own password only, and SITE HELP shows no admin verb
  await using carol = await login(site, "carol", "pw2");
  await ok(carol, "SITE PASSWD pw3");
  assert.equal(await tryLogin(site, "carol", "pw3"), 230);
  assert.equal((await carol.send("SITE ADDUSER x y")).code, 550);
  assert.equal((await carol.send("SITE WHO")).code, 550);
  const help = await carol.send("SITE HELP");
  assert.equal(help.code, 214);
  for (const verb of ["PASSWD", "USER", "HELP"]) {
    assert.match(help.text, new RegExp(`SITE ${verb}`));
  }
  for (
    const verb of ["ADDUSER", "DELUSER", "CHANGE", "WHO", "KICK", "GIVE", "SLAVES", "REMERGE"]
  ) {
    assert.doesNotMatch(help.text, new RegExp(`SITE ${verb}\\b`), `${verb} offered to a user`);
  }
  assert.doesNotMatch((await carol.send("HELP SITE")).text, /SITE (KICK|CHANGE|WHO)\b/);
  assert.match((await admin.send("SITE HELP")).text, /SITE KICK/);

  // a group admin: their group, within the slots
  await ok(admin, "SITE ADDUSER gina gpw");
  await ok(admin, "SITE CHANGE gina group_admin crew");
  await ok(admin, "SITE CHANGE gina group_slots 1");
  await using gina = await login(site, "gina", "gpw");
  await ok(gina, "SITE ADDUSER dan dpw");
  assert.match((await ok(gina, "SITE USER dan")).text, /^groups: crew$/m);
  const full = await gina.send("SITE ADDUSER dora dpw");
  assert.equal(full.code, 550);
  assert.match(full.text, /No free slots in group crew/);
  assert.equal((await gina.send("SITE CHPASS carol x")).code, 550); // not in her group
  await ok(gina, "SITE CHPASS dan dpw2");
  assert.equal(await tryLogin(site, "dan", "dpw2"), 230);

  // KICK ends every session of a user
  await using c2 = await login(site, "carol", "pw3");
  const kicked = await ok(admin, "SITE KICK carol");
  assert.match(kicked.text, /Kicked 2 session/);
  for (const c of [carol, c2]) {
    const r = await c.read().catch(() => ({ code: 0 }));
    assert.ok(r.code === 421 || r.code === 0, `after KICK: ${r.code}`);
  }
});

Deno.test("SITE WHO shows a running upload whose bytes and speed change", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1" }],
    logLevel: "info",
  });
  await using admin = await site.control();
  await site.addUser("up", "pw");
  await using up = await login(site, "up", "pw");
  const ep = await up.pasv("STOR /slow.bin");
  const data = await Deno.connect({ hostname: ep.host, port: ep.port });
  assert.equal((await up.send("STOR /slow.bin")).code, 150);
  const chunk = randomBytes(64 * 1024);
  let sending = true;
  const sender = (async () => {
    while (sending) {
      await data.write(chunk).catch(() => (sending = false));
      await new Promise((ok) => setTimeout(ok, 50)); // a paced client: ~1.3 MB/s
    }
  })();
  const seen = (text: string) => {
    const m = / user=up .* transfer=upload path="\/slow\.bin" bytes=(\d+) speed=(\d+)/.exec(text);
    return m ? { bytes: Number(m[1]), speed: Number(m[2]) } : undefined;
  };
  const first = await poll(async () => {
    const w = seen((await ok(admin, "SITE WHO")).text);
    return w && w.speed > 0 ? w : undefined;
  }, { describe: () => "SITE WHO to show the upload moving" });
  const later = await poll(async () => {
    const w = seen((await ok(admin, "SITE WHO")).text);
    return w && w.bytes > first.bytes && w.speed !== first.speed ? w : undefined;
  }, { describe: () => "SITE WHO to show more bytes and another speed" });
  assert.ok(later.bytes > first.bytes);
  sending = false;
  await sender;
  data.close();
  assert.equal((await up.read()).code, 226);
  assert.doesNotMatch((await ok(admin, "SITE WHO")).text, /transfer=/);
});
