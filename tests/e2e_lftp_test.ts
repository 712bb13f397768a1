/**
 * lftp mirror with PRET forced on: a tree of 120 files in nested folders goes up (mirror -R) and
 * comes back down into another folder byte for byte, keeping every file's time. The slaves sit on 127.0.0.1 with disjoint
 * passive ranges, because lftp rewrites any other 127/8 address in a 227 reply.
 */

import assert from "node:assert/strict";
import {
  describeRun,
  listTree,
  makeSite,
  randomBytes,
  run,
  sha256,
  slavesHolding,
  tempDir,
} from "../testing/mod.ts";

async function makeTree(root: string): Promise<number> {
  let n = 0;
  const dirs = ["", "a", "a/b", "a/b/c", "d", "d/e", "f g", "h/i/j/k"];
  for (const dir of dirs) {
    await Deno.mkdir(`${root}/${dir}`, { recursive: true });
    for (let i = 0; i < 15; i++) {
      // mostly small files, a few bigger ones, and one empty file
      const size = n === 3 ? 0 : i % 7 === 0 ? 150_000 + n : 100 + ((n * 997) % 8000);
      const file = `${root}/${dir}${dir ? "/" : ""}file-${i}.dat`;
      await Deno.writeFile(file, randomBytes(size));
      // an old, distinct time per file: mirror must carry it both ways (MFMT up, MDTM down)
      const mtime = new Date(Date.UTC(2001, 0, 1) + n * 86_400_000 + n * 1000);
      await Deno.utime(file, mtime, mtime);
      n++;
    }
  }
  return n;
}

for (const tls of [false, true]) {
  Deno.test(`lftp${tls ? " over FTPS (ssl-force, protected data)" : ""}: mirror a nested tree up and back down with PRET`, async () => {
    await mirrorTest(tls);
  });
}

async function mirrorTest(tls: boolean) {
  await using site = await makeSite({
    slaves: [{ name: "one", address: "127.0.0.1" }, { name: "two", address: "127.0.0.1" }],
  });
  await using tmp = await tempDir();
  const src = `${tmp.path}/src`;
  const dst = `${tmp.path}/dst`;
  const count = await makeTree(src);
  assert.ok(count >= 100);
  await Deno.mkdir(dst);

  const script = [
    "set ftp:use-pret true",
    "set net:max-retries 1",
    "set net:timeout 10",
    "set net:reconnect-interval-base 1",
    ...(tls
      ? [
        "set ftp:ssl-force true",
        "set ftp:ssl-protect-data true",
        "set ftp:ssl-protect-list true",
        "set ssl:verify-certificate no",
      ]
      : ["set ftp:ssl-allow no"]),
    'set ftp:proxy ""',
    "set ftp:passive-mode on",
    "set xfer:clobber on",
    "set cmd:fail-exit yes",
    `debug -t -o ${tmp.path}/lftp.debug 9`,
    `open -u ${site.user},${site.pass} -p ${site.ftpPort} ${site.host}`,
    `mirror -R --no-perms ${src} /tree`,
    `mirror --no-perms /tree ${dst}`,
    "bye",
  ].join("; ");
  const r = await run("lftp", ["-c", script], { timeoutMs: 180_000 });
  const debug = await Deno.readTextFile(`${tmp.path}/lftp.debug`).catch(() => "");
  assert.ok(
    r.success,
    `${describeRun("lftp", r)}\n--- lftp debug (tail)\n${debug.slice(-6000)}\n${await site.logs(
      4000,
    )}`,
  );
  assert.ok(/---> PRET /.test(debug), "lftp never sent PRET");
  if (tls) {
    assert.match(debug, /---> AUTH TLS/, "lftp should protect the control connection");
    assert.match(debug, /---> PROT P/, "lftp should protect the data connections");
  }

  const up = await listTree(src);
  const down = await listTree(dst);
  assert.deepEqual(down, up, "the downloaded tree has different files");
  for (const rel of up) {
    const [a, b] = await Promise.all([
      Deno.readFile(`${src}/${rel}`),
      Deno.readFile(`${dst}/${rel}`),
    ]);
    assert.equal(b.length, a.length, `${rel}: size differs`);
    assert.equal(await sha256(b), await sha256(a), `${rel}: bytes differ`);
    const [ta, tb] = await Promise.all([
      Deno.stat(`${src}/${rel}`),
      Deno.stat(`${dst}/${rel}`),
    ]);
    assert.equal(tb.mtime?.getTime(), ta.mtime?.getTime(), `${rel}: modification time lost`);
  }
  assert.match(debug, /---> MFMT \d{14} /, "lftp should set times with MFMT");

  // every file sits under exactly one slave root at its virtual path, and both slaves got some
  const perSlave: Record<string, number> = { one: 0, two: 0 };
  for (const rel of up) {
    const holders = await slavesHolding(site, `tree/${rel}`);
    assert.equal(holders.length, 1, `tree/${rel} is held by ${holders.length} slaves`);
    perSlave[holders[0]!]! += 1;
  }
  assert.ok(perSlave.one! > 0 && perSlave.two! > 0, `not spread: ${JSON.stringify(perSlave)}`);
}
