/**
 * The dispatcher and the command table over an in-memory connection: the order of the generic
 * checks, SITE rows, the real target path of listings, PRET kinds from the table.
 */
import assert from "node:assert/strict";
import type { Action } from "../auth/permissions.ts";
import { MasterDouble } from "./_session_double.ts";
import { pretVerbs, siteCommands } from "./commands.ts";
import type { Session } from "./session.ts";

/** Records every permission question; denies targets under /secret. */
function spyPermissions(s: Session): [Action, string | null][] {
  const asked: [Action, string | null][] = [];
  s.may = (action, path) => {
    asked.push([action, path]);
    return Promise.resolve(!(path ?? "").startsWith("/secret"));
  };
  return asked;
}

Deno.test("dispatcher: unknown verb 500, then argument 501, login 530, path 553, permission 550", async () => {
  await using m = await MasterDouble.create();
  const { client: anon } = await m.connect(null);
  assert.equal((await anon.send("FROB x")).code, 500);
  assert.equal((await anon.send("SITE FROB")).code, 500, "an unknown SITE subcommand is a verb");
  assert.equal((await anon.send("RETR")).code, 501, "the argument rule comes before login");
  assert.equal((await anon.send("PWD extra")).code, 501);
  assert.equal((await anon.send("RETR /f")).code, 530);
  assert.equal((await anon.send("SITE SLAVES")).code, 530);
  assert.equal((await anon.send("STAT")).code, 211, "STAT alone is allowed before login");
  assert.equal((await anon.send("STAT /")).code, 530, "STAT <path> needs a login");

  const { client, session } = await m.connect("alice");
  const asked = spyPermissions(session);
  const long = "/" + "n".repeat(300);
  assert.equal((await client.send(`RETR ${long}`)).code, 553, "path checked before permission");
  assert.deepEqual(asked, []);
  const denied = await client.send("RETR /secret/f.bin");
  assert.equal(denied.code, 550);
  assert.match(denied.lines[0]!, /Permission denied: RETR \/secret\/f\.bin/);
  assert.deepEqual(asked, [["download", "/secret/f.bin"]]);
  assert.equal((await client.send("MFMT 20260101000000 /secret/x")).code, 550);
  assert.deepEqual(asked.at(-1), ["overwrite", "/secret/x"]);
});

Deno.test("SITE rows: their own action, admins only where it was, SITE HELP lists them", async () => {
  await using m = await MasterDouble.create();
  const { client: alice } = await m.connect("alice");
  const refused = await alice.send("SITE SLAVES");
  assert.equal(refused.code, 550);
  assert.match(refused.lines[0]!, /SITE SLAVES is for admins only/);
  assert.equal((await alice.send("SITE REMERGE")).code, 501, "argument before permission");
  assert.equal((await alice.send("SITE REMERGE s1")).code, 550, "permission before the handler");
  assert.equal((await alice.send("SITE")).code, 501);
  const help = await alice.send("site help");
  assert.equal(help.code, 214);
  assert.ok(help.lines.some((l) => l.trim().startsWith("SITE HELP")));
  assert.ok(
    !help.lines.some((l) => l.trim().startsWith("SITE REMERGE")),
    "only what alice may run",
  );
  const verbs = await alice.send("HELP");
  assert.ok(verbs.lines.some((l) => / SITE /.test(` ${l} `)), "HELP names SITE once");
  assert.ok(!verbs.lines.some((l) => l.includes("REMERGE")), "SITE rows are not top-level verbs");
  assert.match((await alice.send("HELP SITE REMERGE")).lines[0]!, /full remerge/);

  const { client: root } = await m.connect("root");
  const all = await root.send("SITE HELP");
  for (const row of siteCommands()) {
    assert.ok(
      all.lines.some((l) => l.trim().startsWith(row)),
      `SITE HELP lacks ${row} for an admin`,
    );
  }
  const slaves = await root.send("SITE SLAVES");
  assert.equal(slaves.code, 200);
  assert.equal((await root.send("SITE REMERGE nope")).code, 450);
});

Deno.test("LIST, NLST, STAT, MLSD, MLST: the permission is checked on the real target", async () => {
  await using m = await MasterDouble.create();
  await m.filelist.mkdir("/pub", "alice", "users");
  await m.filelist.mkdir("/secret", "root", "admins");
  const { client, session } = await m.connect("alice");
  const asked = spyPermissions(session);
  assert.equal((await client.send("CWD /pub")).code, 250);
  asked.length = 0;
  for (const line of ["LIST -la /secret", "NLST -l ../secret", "MLSD /secret", "STAT -a /secret"]) {
    const r = await client.send(line);
    assert.equal(r.code, 550, `${line}: ${r.lines.join(" | ")}`);
  }
  assert.equal((await client.send("MLST /secret")).code, 550);
  assert.deepEqual(asked, [
    ["list", "/secret"],
    ["list", "/secret"],
    ["list", "/secret"],
    ["list", "/secret"],
    ["list", "/secret"],
  ]);
  asked.length = 0;
  // allowed: past the checks, a listing without a prepared data connection is 425
  assert.equal((await client.send("LIST -la")).code, 425);
  assert.equal((await client.send("STAT /pub")).code, 213);
  assert.deepEqual(asked, [["list", "/pub"], ["list", "/pub"]]);
});

Deno.test("PRET: the kinds come from the table rows", async () => {
  await using m = await MasterDouble.create();
  await m.filelist.mkdir("/d", "alice", "users");
  assert.deepEqual(pretVerbs(), ["APPE", "LIST", "MLSD", "NLST", "RETR", "STOR"]);
  const { client, session } = await m.connect("alice");
  for (const verb of ["STOU", "STAT", "CWD", "FROB"]) {
    const r = await client.send(`PRET ${verb} /d`);
    assert.equal(r.code, 504, `PRET ${verb}: ${r.lines.join(" | ")}`);
  }
  assert.match((await client.send("PRET STOU x")).lines[0]!, /APPE, LIST, MLSD, NLST, RETR, STOR/);
  assert.equal((await client.send("PRET RETR /d/missing")).code, 550);
  assert.equal((await client.send("PRET STOR")).code, 501);
  assert.equal((await client.send("PRET LIST -la /d")).code, 200);
  assert.deepEqual(session.pret, { verb: "LIST", kind: "list", path: "/d" });
  assert.equal((await client.send("pret appe /d/x.bin")).code, 200);
  assert.deepEqual(session.pret, { verb: "APPE", kind: "upload", path: "/d/x.bin" });
});

Deno.test("a created name in the server's own name space (.drftpd-) is refused with 553", async () => {
  await using m = await MasterDouble.create();
  const { client, session } = await m.connect("alice");
  const asked = spyPermissions(session);
  for (
    const line of [
      "STOR /.drftpd-upload.x1.f.bin",
      "APPE .drftpd-copy.x2.f.bin",
      "MKD /d/.drftpd-anything",
      "XMKD .drftpd-",
      "RNTO /.drftpd-collision.1.f.bin",
    ]
  ) {
    const r = await client.send(line);
    assert.equal(r.code, 553, line);
    assert.match(r.lines[0]!, /names starting with "\.drftpd-" are the server's own/, line);
  }
  assert.deepEqual(asked, [], "refused before any permission question");
  // Only names a command creates: looking at one is an ordinary miss, other names pass.
  assert.equal((await client.send("SIZE /.drftpd-upload.x1.f.bin")).code, 550);
  assert.notEqual((await client.send("MKD /drftpd-plain")).code, 553);
  assert.notEqual((await client.send("MKD /x.drftpd-y")).code, 553);
});
