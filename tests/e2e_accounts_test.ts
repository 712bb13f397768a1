/**
 * Accounts while the master runs: users added, re-passworded, changed and removed with the CLI
 * take effect at the next login (the master's 10-minute login memory included); disabled,
 * expired users and addresses outside a user's masks get 530 naming why.
 */

import assert from "node:assert/strict";
import { FtpControl, makeSite, type Site } from "../testing/mod.ts";

/** USER/PASS on a new connection; the final reply. */
async function tryLogin(site: Site, user: string, pass: string) {
  await using ftp = await FtpControl.connect({ host: site.host, port: site.ftpPort });
  const r = await ftp.send(`USER ${user}`);
  if (r.code !== 331) return r;
  return await ftp.send(`PASS ${pass}`);
}

async function cli(site: Site, args: string[]): Promise<string> {
  const r = await site.drftpd(args);
  assert.ok(r.success, `drftpd ${args.join(" ")}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

Deno.test("CLI changes to users take effect at the next login while the master runs", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1" }],
    logLevel: "info",
    // a refused login must not end in a ban of 127.0.0.1 halfway through
    masterExtra: "failed_login_delay_ms = 0\nban_after_failures = 0",
  });
  await site.addUser("bob", "first", { groups: ["staff"] });
  assert.equal((await tryLogin(site, "bob", "first")).code, 230);

  // an existing name is refused, naming what to use instead
  const again = await site.drftpd(["user", "add", "bob", "--password", "x"]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already exists: use "user passwd".*"user change"/);
  assert.equal((await tryLogin(site, "bob", "first")).code, 230);

  await cli(site, ["user", "passwd", "bob", "--password", "second"]);
  assert.equal((await tryLogin(site, "bob", "first")).code, 530, "old password still works");
  assert.equal((await tryLogin(site, "bob", "second")).code, 230);

  await cli(site, ["user", "change", "bob", "disabled", "true"]);
  let r = await tryLogin(site, "bob", "second");
  assert.equal(r.code, 530);
  assert.match(r.text, /Account disabled/);
  await cli(site, ["user", "change", "bob", "disabled", "false", "expires", "2020-01-01"]);
  r = await tryLogin(site, "bob", "second");
  assert.equal(r.code, 530);
  assert.match(r.text, /Account expired/);
  await cli(site, ["user", "change", "bob", "expires", "never", "masks", "*@10.9.8.*"]);
  r = await tryLogin(site, "bob", "second");
  assert.equal(r.code, 530);
  assert.equal(r.text, "Login not allowed from this address");
  await cli(site, ["user", "change", "bob", "masks", "*@127.0.0.0/8"]);
  assert.equal((await tryLogin(site, "bob", "second")).code, 230);

  const shown = await cli(site, ["user", "show", "bob"]);
  assert.match(shown, /^groups: staff$/m);
  assert.match(shown, /^last_login: \d{4}-/m);
  assert.match(await cli(site, ["group", "show", "staff"]), /^members: bob$/m);

  await cli(site, ["user", "del", "bob"]);
  assert.equal((await tryLogin(site, "bob", "second")).code, 530, "deleted user still logs in");
  await site.addUser("bob", "third");
  assert.equal((await tryLogin(site, "bob", "second")).code, 530);
  assert.equal((await tryLogin(site, "bob", "third")).code, 230);
});

Deno.test("the master's data folder and KV file are owner-only", async () => {
  await using site = await makeSite({ slaves: [] });
  assert.equal((await Deno.stat(site.masterDataDir)).mode! & 0o777, 0o700);
  assert.equal((await Deno.stat(`${site.masterDataDir}/filelist.kv`)).mode! & 0o777, 0o600);
});
