/**
 * What the master says about files agrees with what was uploaded: LIST, NLST and MLSD (via curl
 * with PRET), MLST, SIZE, MDTM and XCRC (raw control connection, exact reply codes), with the
 * CRC32 computed locally.
 */

import assert from "node:assert/strict";
import {
  crc32Hex,
  curl,
  CURL_PRET,
  describeRun,
  makeSite,
  randomBytes,
  tempDir,
} from "../testing/mod.ts";

/** Parses "type=file;size=12;modify=…; name" into lower-cased facts and the name. */
function parseFacts(line: string): { facts: Record<string, string>; name: string } {
  const sp = line.indexOf(" ");
  const facts: Record<string, string> = {};
  for (const f of line.slice(0, sp).split(";")) {
    const eq = f.indexOf("=");
    if (eq > 0) facts[f.slice(0, eq).toLowerCase()] = f.slice(eq + 1);
  }
  return { facts, name: line.slice(sp + 1) };
}

Deno.test("listing and file-info commands agree with the uploads", async (t) => {
  await using site = await makeSite({
    slaves: [{ name: "s2", address: "127.0.0.2" }, { name: "s3", address: "127.0.0.3" }],
  });
  await using tmp = await tempDir();

  const files: Record<string, Uint8Array> = {
    "alpha.bin": randomBytes(12_345),
    "beta.txt": new TextEncoder().encode("hello drftpd\n".repeat(100)),
    "gamma with space.dat": randomBytes(70_001),
  };
  const before = Date.now();
  for (const [name, bytes] of Object.entries(files)) {
    const src = `${tmp.path}/${name}`;
    await Deno.writeFile(src, bytes);
    const up = await curl([
      ...CURL_PRET,
      "--ftp-create-dirs",
      "-T",
      src,
      site.url(`/info/${encodeURIComponent(name)}`),
    ]);
    assert.ok(up.success, describeRun(`upload ${name}`, up) + (await site.logs(4000)));
  }
  {
    const sub = `${tmp.path}/sub.bin`;
    await Deno.writeFile(sub, randomBytes(10));
    const up = await curl([
      ...CURL_PRET,
      "--ftp-create-dirs",
      "-T",
      sub,
      site.url("/info/sub/x.bin"),
    ]);
    assert.ok(up.success, describeRun("upload sub/x.bin", up));
  }
  const after = Date.now();
  const names = [...Object.keys(files), "sub"].sort();

  await t.step("LIST", async () => {
    const r = await curl([...CURL_PRET, site.url("/info/")]);
    assert.ok(r.success, describeRun("curl LIST", r));
    const lines = r.stdout.split(/\r?\n/).filter((l) => l.trim() !== "" && !/^total /.test(l));
    for (const [name, bytes] of Object.entries(files)) {
      const line = lines.find((l) => l.endsWith(` ${name}`));
      assert.ok(line, `LIST has no line for "${name}":\n${r.stdout}`);
      assert.ok(line.startsWith("-"), `"${name}" should be a file: ${line}`);
      const fields = line.split(/\s+/);
      assert.ok(fields.includes(String(bytes.length)), `LIST size of ${name} wrong: ${line}`);
    }
    const dir = lines.find((l) => l.endsWith(" sub"));
    assert.ok(dir?.startsWith("d"), `LIST should show "sub" as a directory:\n${r.stdout}`);
    assert.equal(lines.length, names.length, `LIST has extra lines:\n${r.stdout}`);
  });

  await t.step("NLST", async () => {
    const r = await curl([...CURL_PRET, "-l", site.url("/info/")]);
    assert.ok(r.success, describeRun("curl NLST", r));
    const got = r.stdout.split(/\r?\n/).filter((l) => l !== "").map((l) => l.replace(/^.*\//, ""));
    assert.deepEqual(got.sort(), names);
  });

  await t.step("MLSD", async () => {
    const r = await curl([...CURL_PRET, "-X", "MLSD", site.url("/info/")]);
    assert.ok(r.success, describeRun("curl MLSD", r));
    const entries = r.stdout.split(/\r?\n/).filter((l) => l !== "").map(parseFacts);
    const byName = new Map(entries.map((e) => [e.name, e.facts]));
    for (const [name, bytes] of Object.entries(files)) {
      const facts = byName.get(name);
      assert.ok(facts, `MLSD has no entry for "${name}":\n${r.stdout}`);
      assert.equal(facts.type?.toLowerCase(), "file");
      assert.equal(facts.size, String(bytes.length), `MLSD size of ${name}`);
      assert.match(facts.modify ?? "", /^\d{14}(\.\d+)?$/);
    }
    assert.equal(byName.get("sub")?.type?.toLowerCase(), "dir", `MLSD "sub":\n${r.stdout}`);
    const real = entries.filter((e) =>
      !["cdir", "pdir"].includes(e.facts.type?.toLowerCase() ?? "")
    );
    assert.deepEqual(real.map((e) => e.name).sort(), names);
  });

  await t.step("MLST, SIZE, MDTM, XCRC", async () => {
    await using ftp = await site.control();
    for (const [name, bytes] of Object.entries(files)) {
      const path = `/info/${name}`;

      const mlst = await ftp.send(`MLST ${path}`);
      assert.equal(mlst.code, 250, mlst.lines.join("\n"));
      const factLine = mlst.lines.find((l) => l.startsWith(" "));
      assert.ok(factLine, `MLST has no fact line: ${mlst.lines.join("\n")}`);
      const { facts, name: shown } = parseFacts(factLine.slice(1));
      assert.equal(facts.type?.toLowerCase(), "file");
      assert.equal(facts.size, String(bytes.length));
      assert.ok(shown.endsWith(name), `MLST names "${shown}"`);

      const size = await ftp.send(`SIZE ${path}`);
      assert.deepEqual([size.code, size.text.trim()], [213, String(bytes.length)]);

      const mdtm = await ftp.send(`MDTM ${path}`);
      assert.equal(mdtm.code, 213, mdtm.lines.join("\n"));
      const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\.\d+)?$/.exec(mdtm.text.trim());
      assert.ok(m, `MDTM reply not YYYYMMDDHHMMSS: "${mdtm.text}"`);
      const t = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
      assert.ok(
        t >= before - 120_000 && t <= after + 120_000,
        `MDTM ${mdtm.text} is not the upload time (UTC ${new Date(before).toISOString()})`,
      );

      const xcrc = await ftp.send(`XCRC ${path}`);
      assert.equal(xcrc.code, 250, xcrc.lines.join("\n"));
      assert.equal(xcrc.text.trim().toLowerCase(), crc32Hex(bytes), `XCRC of ${name}`);
    }
    const missing = await ftp.send("SIZE /info/nope.bin");
    assert.equal(missing.code, 550, missing.lines.join("\n"));
    const missingCrc = await ftp.send("XCRC /info/nope.bin");
    assert.equal(missingCrc.code, 550, missingCrc.lines.join("\n"));
    const dirMlst = await ftp.send("MLST /info/sub");
    assert.equal(dirMlst.code, 250, dirMlst.lines.join("\n"));
    const dirFacts = parseFacts(dirMlst.lines.find((l) => l.startsWith(" "))!.slice(1)).facts;
    assert.equal(dirFacts.type?.toLowerCase(), "dir");
  });
});
