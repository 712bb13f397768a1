/**
 * Path permissions end to end, with the rules: outside `=staff` nobody lists, downloads
 * or uploads under /private, which is absent from their listings and answers 550 exactly as a
 * missing path; `!guest` excludes a staff member named guest. Defaults: bob cannot delete,
 * rename or overwrite alice's file, alice can delete her own, an admin anyone's.
 */

import assert from "node:assert/strict";
import {
  curl,
  CURL_PRET,
  exists,
  findByName,
  FtpControl,
  makeSite,
  randomBytes,
  type Site,
} from "../testing/mod.ts";

const RULES = `
[[permissions]]
path = "/private/**"
list = ["=staff"]
download = ["=staff"]
upload = ["=staff", "!guest"]
`;

function login(site: Site, user: string) {
  return FtpControl.login({ host: site.host, port: site.ftpPort }, { user, pass: `${user}-pw` });
}

/** A reply with the path it names replaced, to compare a hidden path with a missing one. */
async function answer(ftp: FtpControl, line: string, path: string): Promise<string> {
  const r = await ftp.send(line);
  return r.lines.join("\n").replaceAll(path, "<P>");
}

async function curlList(site: Site, user: string, path: string, extra: string[] = []) {
  const url = `ftp://${user}:${user}-pw@${site.host}:${site.ftpPort}${path}`;
  const r = await curl([...CURL_PRET, ...extra, url]);
  return r;
}

Deno.test("a private area: invisible and closed outside =staff; !guest cannot upload", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1" }],
    logLevel: "info",
    masterExtra: RULES,
  });
  await site.addUser("alice", "alice-pw");
  await site.addUser("sam", "sam-pw", { groups: ["staff"] });
  await site.addUser("guest", "guest-pw", { groups: ["staff"] });
  await using admin = await site.control();
  assert.equal((await admin.send("MKD /private")).code, 257);
  assert.equal((await admin.send("MKD /pub")).code, 257);
  const secret = randomBytes(5000);
  await admin.store("/private/secret.bin", secret);

  await using alice = await login(site, "alice");
  // absent from every listing of /
  const list = await curlList(site, "alice", "/");
  assert.ok(list.success, list.stderr);
  assert.match(list.stdout, /pub/);
  assert.doesNotMatch(list.stdout, /private/);
  const nlst = await curlList(site, "alice", "/", ["--list-only"]);
  assert.deepEqual(nlst.stdout.trim().split(/\r?\n/), ["pub"]);
  const stat = await alice.send("STAT /");
  assert.equal(stat.code, 213);
  assert.doesNotMatch(stat.text, /private/);
  const mlsd = await alice.pasv("MLSD /");
  const m = await alice.transfer(mlsd, "MLSD /");
  assert.doesNotMatch(new TextDecoder().decode(m.data), /private/);
  // and answers exactly as a missing path
  for (const verb of ["CWD", "SIZE", "MDTM", "MLST", "STAT"]) {
    const pairs: [string, string][] = [
      ["/private", "/nothere"],
      ["/private/secret.bin", "/nothere/x.bin"],
    ];
    for (const [hidden, missing] of pairs) {
      assert.equal(
        await answer(alice, `${verb} ${hidden}`, hidden),
        await answer(alice, `${verb} ${missing}`, missing),
        `${verb} ${hidden}`,
      );
    }
  }
  const pretHidden = await answer(alice, "PRET RETR /private/secret.bin", "/private/secret.bin");
  assert.equal(pretHidden, await answer(alice, "PRET RETR /nothere/x.bin", "/nothere/x.bin"));
  const get = await curlList(site, "alice", "/private/secret.bin");
  assert.ok(!get.success, "alice downloaded the secret");
  // no upload: 5xx, nothing on disk
  const put = await curl([
    ...CURL_PRET,
    "-T",
    "-",
    `ftp://alice:alice-pw@${site.host}:${site.ftpPort}/private/alice.bin`,
  ], { stdin: randomBytes(100) });
  assert.ok(!put.success, "alice uploaded into /private");
  assert.deepEqual(await findByName(site.slaveRoot("s1"), "alice.bin"), []);

  // a staff member sees, downloads and uploads
  const samList = await curlList(site, "sam", "/");
  assert.match(samList.stdout, /private/);
  await using sam = await login(site, "sam");
  assert.deepEqual((await sam.retrieve("/private/secret.bin")).data, secret);
  await sam.store("/private/sam.bin", randomBytes(10));
  assert.ok(await exists(`${site.slaveRoot("s1")}/private/sam.bin`));

  // guest is in staff but named by "!guest" for uploads
  await using guest = await login(site, "guest");
  assert.equal((await guest.retrieve("/private/secret.bin")).data.length, 5000);
  await guest.pasv("STOR /private/guest.bin").catch(() => {});
  const refused = await guest.send("STOR /private/guest.bin");
  assert.equal(refused.code, 550, refused.lines.join(" | "));
  assert.equal(await exists(`${site.slaveRoot("s1")}/private/guest.bin`), false);
});

Deno.test("defaults: only the owner (or an admin) deletes, renames or overwrites a file", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1" }],
    logLevel: "info",
  });
  await site.addUser("alice", "alice-pw");
  await site.addUser("bob", "bob-pw");
  await using alice = await login(site, "alice");
  const mine = randomBytes(2000);
  await alice.store("/a.bin", mine);
  await alice.store("/b.bin", randomBytes(10));
  const onDisk = `${site.slaveRoot("s1")}/a.bin`;

  await using bob = await login(site, "bob");
  assert.equal((await bob.send("DELE /a.bin")).code, 550);
  const rnfr = await bob.send("RNFR /a.bin");
  if (rnfr.code === 350) assert.equal((await bob.send("RNTO /stolen.bin")).code, 550);
  else assert.equal(rnfr.code, 550);
  await bob.pasv("STOR /a.bin").catch(() => {});
  assert.equal((await bob.send("STOR /a.bin")).code, 550);
  assert.deepEqual(await Deno.readFile(onDisk), mine, "alice's bytes changed");
  assert.equal((await bob.send("SIZE /a.bin")).text, "2000");

  // her own: she may
  await alice.store("/a.bin", randomBytes(3000)); // overwrite her own
  assert.equal((await alice.send("RNFR /a.bin")).code, 350);
  assert.equal((await alice.send("RNTO /a2.bin")).code, 250);
  assert.equal((await alice.send("DELE /a2.bin")).code, 250);
  // an admin: anyone's
  await using admin = await site.control();
  assert.equal((await admin.send("DELE /b.bin")).code, 250);
  assert.equal(await exists(`${site.slaveRoot("s1")}/b.bin`), false);
});

Deno.test("the README's write-only upload area and read-only archive", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1" }],
    logLevel: "info",
    masterExtra: `
[[permissions]]
path = "/incoming/*/**"
list = ["=review"]
download = ["=review"]
[[permissions]]
path = "/archive/**"
upload = []
makedir = []
delete_own = []
rename_own = []
`,
  });
  await site.addUser("alice", "alice-pw");
  await site.addUser("rita", "rita-pw", { groups: ["review"] });
  await using admin = await site.control();
  for (const d of ["/incoming", "/archive"]) assert.equal((await admin.send(`MKD ${d}`)).code, 257);
  await admin.store("/archive/old.bin", randomBytes(100));

  await using alice = await login(site, "alice");
  await alice.store("/incoming/new.bin", randomBytes(50)); // may upload
  const ep = await alice.pasv("LIST /incoming");
  const listing = await alice.transfer(ep, "LIST /incoming");
  assert.equal(new TextDecoder().decode(listing.data), "", "alice lists the drop box");
  assert.equal(
    await answer(alice, "SIZE /incoming/new.bin", "/incoming/new.bin"),
    await answer(alice, "SIZE /incoming/none.bin", "/incoming/none.bin"),
  );
  await using rita = await login(site, "rita");
  assert.equal((await rita.retrieve("/incoming/new.bin")).data.length, 50);

  assert.equal((await alice.retrieve("/archive/old.bin")).data.length, 100);
  await alice.pasv("STOR /archive/mine.bin").catch(() => {});
  assert.equal((await alice.send("STOR /archive/mine.bin")).code, 550);
  assert.equal((await alice.send("MKD /archive/d")).code, 550);
  assert.equal((await alice.send("DELE /archive/old.bin")).code, 550);
  assert.equal(await exists(`${site.slaveRoot("s1")}/archive/mine.bin`), false);
  await admin.store("/archive/admin.bin", randomBytes(1)); // admins are not bound
});
