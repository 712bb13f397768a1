/**
 * Python ftplib, which knows nothing of PRET: with `pasv_without_pret = "relay"` plain PASV
 * transfers are relayed through the master; with "reject" a PASV without PRET gets a 5xx naming
 * PRET, and a manual `PRET` plus `trust_server_pasv_ipv4_address` sends the data straight to the
 * slave.
 */

import assert from "node:assert/strict";
import {
  describeRun,
  findByName,
  freePort,
  makeSite,
  parse227,
  randomBytes,
  run,
  sameFile,
  type Site,
  slavesHolding,
  tempDir,
} from "../testing/mod.ts";

const SCRIPT = `
import ftplib, json, sys

cfg = json.loads(sys.argv[1])
out = {"replies_227": [], "steps": []}

ftp = ftplib.FTP()
orig_sendcmd = ftp.sendcmd
def sendcmd(cmd):
    resp = orig_sendcmd(cmd)
    if resp.startswith("227"):
        out["replies_227"].append(resp)
    return resp
ftp.sendcmd = sendcmd

def step(name, fn):
    try:
        fn()
        out["steps"].append([name, "ok"])
    except Exception as e:
        out["steps"].append([name, "error: %s: %s" % (type(e).__name__, e)])

ftp.connect(cfg["host"], cfg["port"], timeout=30)
ftp.login(cfg["user"], cfg["pass"])

if cfg["mode"] == "relay":
    def up():
        with open(cfg["src"], "rb") as f:
            ftp.storbinary("STOR " + cfg["name"], f)
    def down():
        with open(cfg["dst"], "wb") as f:
            ftp.retrbinary("RETR " + cfg["name"], f.write)
    def nlst():
        out["nlst"] = ftp.nlst()
    step("upload", up)
    step("download", down)
    step("nlst", nlst)
else:
    try:
        resp = ftp.sendcmd("PASV")
        out["bare_pasv"] = resp
    except ftplib.Error as e:
        out["bare_pasv"] = str(e)
    ftp.trust_server_pasv_ipv4_address = True
    def up():
        ftp.sendcmd("PRET STOR " + cfg["name"])
        with open(cfg["src"], "rb") as f:
            ftp.storbinary("STOR " + cfg["name"], f)
    def down():
        ftp.sendcmd("PRET RETR " + cfg["name"])
        with open(cfg["dst"], "wb") as f:
            ftp.retrbinary("RETR " + cfg["name"], f.write)
    step("upload", up)
    out["upload_227"] = list(out["replies_227"])
    step("download", down)

try:
    ftp.quit()
except Exception:
    ftp.close()
print(json.dumps(out))
`;

interface ScriptOut {
  replies_227: string[];
  steps: [string, string][];
  bare_pasv?: string;
  upload_227?: string[];
  nlst?: string[];
}

async function runScript(
  site: Site,
  dir: string,
  mode: "relay" | "reject",
  name: string,
): Promise<{ out: ScriptOut; src: string; dst: string }> {
  const script = `${dir}/ftp_${mode}.py`;
  await Deno.writeTextFile(script, SCRIPT);
  const src = `${dir}/${mode}.src`;
  const dst = `${dir}/${mode}.dst`;
  await Deno.writeFile(src, randomBytes(1024 * 1024 + 333));
  const cfg = {
    host: site.host,
    port: site.ftpPort,
    user: site.user,
    pass: site.pass,
    mode,
    name,
    src,
    dst,
  };
  const r = await run("python3", [script, JSON.stringify(cfg)], { timeoutMs: 120_000 });
  assert.ok(r.success, describeRun("python3 ftplib", r) + (await site.logs(4000)));
  return { out: JSON.parse(r.stdout) as ScriptOut, src, dst };
}

Deno.test("ftplib: PASV without PRET is relayed through the master", async () => {
  // Two slaves: without PRET the master cannot know which one will serve, so it relays.
  const http = freePort();
  await using site = await makeSite({
    slaves: [{ name: "s2", address: "127.0.0.2" }, { name: "s3", address: "127.0.0.3" }],
    pasvWithoutPret: "relay",
    http: `127.0.0.1:${http}`,
  });
  await using tmp = await tempDir();
  const { out, src, dst } = await runScript(site, tmp.path, "relay", "relayed.bin");
  assert.deepEqual(
    out.steps,
    [["upload", "ok"], ["download", "ok"], ["nlst", "ok"]],
    `${JSON.stringify(out)}\n${await site.logs(4000)}`,
  );
  assert.ok(await sameFile(src, dst), "relayed download differs from the upload");
  assert.ok(
    (out.nlst ?? []).some((n) => n.replace(/^.*\//, "") === "relayed.bin"),
    `relayed NLST: ${JSON.stringify(out.nlst)}`,
  );
  assert.deepEqual(await findByName(site.masterDataDir, "relayed.bin"), []);
  // relayed: the data connections went to the master, not to the slave on 127.0.0.2
  assert.ok(out.replies_227.length >= 2, JSON.stringify(out));
  for (const reply of out.replies_227) {
    assert.equal(parse227(reply).host, "127.0.0.1", `relay 227 should name the master: ${reply}`);
  }
  assert.deepEqual(await slavesHolding(site, "relayed.bin"), ["s2"]);
  assert.ok(await sameFile(src, `${site.slaveRoot("s2")}/relayed.bin`));
  // the master counted every file byte it carried (upload and download), as relay
  const metrics = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text();
  const size = (await Deno.stat(src)).size;
  assert.match(
    metrics,
    new RegExp(`^drftpd_relayed_bytes_total\\{via="relay"\\} ${2 * size}$`, "m"),
  );
  assert.match(metrics, /^drftpd_relayed_bytes_total\{via="pasv_proxy"\} 0$/m);
});

Deno.test("ftplib: PASV without PRET is rejected; manual PRET goes to the slave", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s2", address: "127.0.0.2" }],
    pasvWithoutPret: "reject",
  });
  await using tmp = await tempDir();
  const { out, src, dst } = await runScript(site, tmp.path, "reject", "direct.bin");
  const bare = out.bare_pasv ?? "";
  assert.match(bare, /^5\d\d/, `bare PASV should get a 5xx: "${bare}"`);
  assert.match(bare, /PRET/i, `the 5xx should mention PRET: "${bare}"`);

  assert.deepEqual(
    out.steps,
    [["upload", "ok"], ["download", "ok"]],
    `${JSON.stringify(out)}\n${await site.logs(4000)}`,
  );
  assert.ok(await sameFile(src, dst), "direct download differs from the upload");
  assert.ok(out.replies_227.length >= 2, JSON.stringify(out));
  for (const reply of out.replies_227) {
    assert.equal(
      parse227(reply).host,
      "127.0.0.2",
      `227 after PRET should name the slave: ${reply}`,
    );
  }
  assert.deepEqual(await slavesHolding(site, "direct.bin"), ["s2"]);
});

Deno.test("ftplib: with exactly one slave, PASV without PRET goes straight to it", async () => {
  await using site = await makeSite({
    slaves: [{ name: "s2", address: "127.0.0.2" }],
    pasvWithoutPret: "relay",
  });
  await using tmp = await tempDir();
  const { out, src, dst } = await runScript(site, tmp.path, "relay", "direct.bin");
  assert.deepEqual(
    out.steps,
    [["upload", "ok"], ["download", "ok"], ["nlst", "ok"]],
    `${JSON.stringify(out)}\n${await site.logs(4000)}`,
  );
  assert.ok(await sameFile(src, dst), "download differs from the upload");
  assert.ok((out.nlst ?? []).some((n) => n.replace(/^.*\//, "") === "direct.bin"));
  // every 227 named the slave (ftplib ignored the address and went through the master's pipe,
  // which the master logs with its byte count)
  for (const reply of out.replies_227) {
    assert.equal(parse227(reply).host, "127.0.0.2", `227 should name the only slave: ${reply}`);
  }
});
