/**
 * End-to-end: `drftpd init` writes master.toml and slave.toml and an admin; a master and a slave
 * started with those files serve a client logging in with the printed password. Only the port
 * numbers are changed (to free ones), so that tests can run in parallel.
 */
import assert from "node:assert/strict";
import {
  curl,
  CURL_PRET,
  describeRun,
  freePort,
  freePortRange,
  repoRoot,
  run,
  startDaemon,
  tempDir,
} from "../testing/mod.ts";

function drftpd(args: string[], cwd: string) {
  return run(Deno.execPath(), ["run", "-A", `${repoRoot}main.ts`, ...args], { cwd });
}

Deno.test("init, then master and slave with its files: the printed admin password logs in", async () => {
  await using dir = await tempDir("drftpd-init-");
  const site = `${dir.path}/site`;
  const init = await drftpd(["init", "--dir", "site"], dir.path);
  assert.equal(init.code, 0, describeRun("init", init));
  const password = /shown only this once: (\S+)/.exec(init.stdout)?.[1];
  assert.ok(password, init.stdout);
  const again = await drftpd(["init", "--dir", site], dir.path);
  assert.equal(again.code, 2, "a second init refuses to overwrite");
  assert.match(again.stderr, /master\.toml" exists already/);

  const masterFile = `${site}/master.toml`;
  const slaveFile = `${site}/slave.toml`;
  const master = await Deno.readTextFile(masterFile);
  const slave = await Deno.readTextFile(slaveFile);
  const secret = /^secret = "(\w+)"$/m.exec(master)?.[1];
  assert.ok(secret && secret.length >= 32, "a random secret");
  assert.ok(slave.includes(`secret = "${secret}"`), "the same secret in slave.toml");
  assert.equal((await Deno.stat(masterFile)).mode! & 0o777, 0o600);

  const ftp = freePort();
  const link = freePort();
  const mp = freePortRange(10);
  let sp = freePortRange(10);
  while (sp.from <= mp.to && mp.from <= sp.to) sp = freePortRange(10);
  await Deno.writeTextFile(
    masterFile,
    master.replace("0.0.0.0:2121", `127.0.0.1:${ftp}`).replace("0.0.0.0:1099", `127.0.0.1:${link}`)
      .replace("50000-50099", `${mp.from}-${mp.to}`).replace("127.0.0.1:9121", ""),
  );
  await Deno.writeTextFile(
    slaveFile,
    slave.replace("127.0.0.1:1099", `127.0.0.1:${link}`).replace(
      "50100-50199",
      `${sp.from}-${sp.to}`,
    )
      .replace('listen_address = "0.0.0.0"', 'listen_address = "127.0.0.1"'),
  );

  const check = await drftpd(["config", "check", "--config", "site/master.toml"], dir.path);
  assert.equal(check.code, 0, describeRun("config check", check));
  assert.match(check.stdout, /a valid master configuration/);
  assert.match(check.stdout, /^slaves\.secret = "\w+"\s+# file$/m);
  assert.match(check.stdout, /^ftp\.idle_timeout = 900\s+# default$/m);
  assert.match(check.stdout, new RegExp(`^master\\.data_dir = "${site}/master"\\s+# file$`, "m"));
  const slaveCheck = await drftpd(["config", "check", "-c", slaveFile], dir.path);
  assert.match(slaveCheck.stdout, /a valid slave configuration/, describeRun("check", slaveCheck));
  await Deno.writeTextFile(`${dir.path}/bad.toml`, `[ftp]\nlisten_port = 21\n`);
  const bad = await drftpd(["config", "check", "--config", "bad.toml"], dir.path);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /bad\.toml: ftp\.listen_port: unknown key/);

  await using m = startDaemon(["master", "--config", masterFile]);
  await m.waitFor(/FTP listening/);
  await using s = startDaemon(["slave", "--config", slaveFile]);
  await m.waitFor(/Slave slave1 online/);
  await Deno.writeTextFile(`${dir.path}/hello.txt`, "hello\n");
  const url = `ftp://admin:${password}@127.0.0.1:${ftp}/`;
  const up = await curl([...CURL_PRET, "-T", `${dir.path}/hello.txt`, url]);
  assert.equal(up.code, 0, describeRun("curl upload", up));
  const list = await curl([...CURL_PRET, url]);
  assert.match(list.stdout, /hello\.txt/, describeRun("curl list", list));
  assert.equal(await Deno.readTextFile(`${site}/slave1/hello.txt`), "hello\n");
  assert.equal((await s.stop()).code, 0, s.output());
  assert.equal((await m.stop()).code, 0, m.output());
});
