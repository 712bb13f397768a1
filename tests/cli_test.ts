/** End-to-end: runs main.ts as a real subprocess and checks output and exit codes. */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { VERSION } from "../shared/version.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

async function drftpd(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("drftpd --version prints the version", async () => {
  const r = await drftpd("--version");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `drftpd ${VERSION}\n`);
});

Deno.test("drftpd --help lists the commands", async () => {
  const r = await drftpd("--help");
  assert.equal(r.code, 0, r.stderr);
  for (const word of ["master", "slave", "local", "user add", "--version"]) {
    assert.ok(r.stdout.includes(word), `help mentions ${word}`);
  }
  const sub = await drftpd("master", "--help");
  assert.equal(sub.code, 0, sub.stderr);
  assert.match(sub.stdout, /Usage: drftpd master/);
});

Deno.test("drftpd master --bogus exits 2 naming the flag", async () => {
  const r = await drftpd("master", "--bogus");
  assert.equal(r.code, 2);
  assert.match(r.stderr, /drftpd master: unknown flag "--bogus"/);
  assert.equal(r.stdout, "");
});

Deno.test("drftpd with an unknown command exits 2", async () => {
  const r = await drftpd("serve");
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command "serve"/);
});

Deno.test("drftpd master with an unknown config key exits 2 naming file and key", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/bad.toml`;
    await Deno.writeTextFile(file, `[ftp]\nlisten = "127.0.0.1:0"\nlisen_port = 21\n`);
    const r = await drftpd("master", "--config", file);
    assert.equal(r.code, 2);
    assert.ok(r.stderr.includes(`${file}: ftp.lisen_port: unknown key`), r.stderr);
    await Deno.writeTextFile(file, `[ftp]\npassive_ports = "50100-50000"\n`);
    const v = await drftpd("slave", "--config", file);
    assert.equal(v.code, 2);
    assert.ok(v.stderr.includes(`${file}: ftp: unknown section`), v.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("drftpd slave with a bad value exits 2 naming file, key and value", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/slave.toml`;
    await Deno.writeTextFile(file, `[slave]\npassive_ports = "50100-50000"\n`);
    const r = await drftpd("slave", "--config", file);
    assert.equal(r.code, 2);
    assert.ok(
      r.stderr.includes(
        `${file}: slave.passive_ports = "50100-50000": range start is after its end`,
      ),
      r.stderr,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
