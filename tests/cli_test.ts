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

/** Every (sub)command as typed; `--help` and `--version` must work after each. */
const SUBCOMMANDS = [
  [],
  ["master"],
  ["slave"],
  ["local"],
  ["user"],
  ["user", "add"],
  ["user", "list"],
  ["init"],
  ["config"],
  ["config", "check"],
];

Deno.test("--version and --help work after every subcommand", async () => {
  for (const sub of SUBCOMMANDS) {
    const v = await drftpd(...sub, "--version");
    assert.equal(v.code, 0, `${sub.join(" ")} --version: ${v.stderr}`);
    assert.equal(v.stdout, `drftpd ${VERSION}\n`);
    const h = await drftpd(...sub, "--help");
    assert.equal(h.code, 0, `${sub.join(" ")} --help: ${h.stderr}`);
    assert.match(h.stdout, new RegExp(`drftpd ${sub.join(" ")}`));
  }
});

Deno.test("the help of each command lists every flag the README shows for it", async () => {
  const readme = await Deno.readTextFile(`${ROOT}/README.md`);
  // Inline code spans and code-block lines that start with "drftpd <command>".
  const uses = [
    ...[...readme.matchAll(/`(drftpd [^`]+)`/g)].map((m) => m[1]!),
    ...readme.split("\n").filter((l) => l.startsWith("drftpd ")),
  ];
  let checked = 0;
  for (const use of uses) {
    const words = use.split(/\s+/);
    // The longest help key the use starts with: "drftpd user add" before "drftpd user".
    const helpKeys = [
      "drftpd user add",
      "drftpd user list",
      "drftpd user",
      "drftpd group",
      "drftpd config check",
      "drftpd",
    ];
    for (const w of ["master", "slave", "local", "init"]) helpKeys.unshift(`drftpd ${w}`);
    const key = helpKeys.find((k) => words.slice(0, k.split(" ").length).join(" ") === k)!;
    const sub = key.split(" ").slice(1);
    const help = (await drftpd(...sub, "--help")).stdout;
    for (const flag of use.match(/--[a-z][a-z-]*/g) ?? []) {
      assert.ok(help.includes(flag), `"${key} --help" lists ${flag} (README: ${use})`);
      checked++;
    }
  }
  assert.ok(checked >= 10, `checked ${checked} flags`);
});

Deno.test("drftpd master on a busy port names the address", async () => {
  const dir = await Deno.makeTempDir();
  using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (busy.addr as Deno.NetAddr).port;
  try {
    const file = `${dir}/master.toml`;
    await Deno.writeTextFile(
      file,
      `[master]\ndata_dir = "${dir}/data"\n[ftp]\nlisten = "127.0.0.1:${port}"\n` +
        `[slaves]\nlisten = "127.0.0.1:0"\nsecret = "s"\n`,
    );
    const r = await drftpd("master", "--config", file);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`FTP on 127\\.0\\.0\\.1:${port}: address already in use`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
