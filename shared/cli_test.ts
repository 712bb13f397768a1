import assert from "node:assert/strict";
import {
  type Command,
  HELP,
  localBanner,
  type LocalCommand,
  localSetup,
  parseCommand,
  randomToken,
  readLoginFile,
  UsageError,
  writeLoginFile,
} from "./cli.ts";

Deno.test("parseCommand() accepts every command form", () => {
  const cases: [string[], Command][] = [
    [["--version"], { kind: "version" }],
    [["-V"], { kind: "version" }],
    [["--help"], { kind: "help", text: HELP["drftpd"]! }],
    [["help"], { kind: "help", text: HELP["drftpd"]! }],
    [["master"], { kind: "master", config: null, logLevel: null }],
    [["master", "--config", "m.toml"], { kind: "master", config: "m.toml", logLevel: null }],
    [["master", "-c", "m.toml", "--log-level=debug"], {
      kind: "master",
      config: "m.toml",
      logLevel: "debug",
    }],
    [["master", "--help"], { kind: "help", text: HELP["drftpd master"]! }],
    [["slave", "--config=s.toml"], { kind: "slave", config: "s.toml", logLevel: null }],
    [["slave", "-h"], { kind: "help", text: HELP["drftpd slave"]! }],
    [["local"], {
      kind: "local",
      slaves: 2,
      dir: "data",
      port: 2121,
      tlsPort: null,
      httpPort: 9121,
      logLevel: null,
    }],
    [["local", "--slaves", "5", "--dir", "/tmp/x", "--port", "2222", "--log-level", "warning"], {
      kind: "local",
      slaves: 5,
      dir: "/tmp/x",
      port: 2222,
      tlsPort: null,
      httpPort: 9121,
      logLevel: "warning",
    }],
    [["local", "--tls-port", "2990"], {
      kind: "local",
      slaves: 2,
      dir: "data",
      port: 2121,
      tlsPort: 2990,
      httpPort: 9121,
      logLevel: null,
    }],
    [["master", "-V"], { kind: "version" }],
    [["user", "add", "--version"], { kind: "version" }],
    [["local", "--help"], { kind: "help", text: HELP["drftpd local"]! }],
    [["user", "--help"], { kind: "help", text: HELP["drftpd user"]! }],
    [["user", "add", "--help"], { kind: "help", text: HELP["drftpd user add"]! }],
    [["user", "add", "bob", "--password", "pw"], {
      kind: "user-add",
      config: null,
      name: "bob",
      password: "pw",
      groups: [],
      admin: false,
    }],
    [["user", "add", "--config", "m.toml", "-g", "a", "bob", "--group=b", "--admin", "-p", "x"], {
      kind: "user-add",
      config: "m.toml",
      name: "bob",
      password: "x",
      groups: ["a", "b"],
      admin: true,
    }],
    [["user", "list", "--config", "m.toml"], { kind: "user-list", config: "m.toml" }],
    [["user", "list"], { kind: "user-list", config: null }],
    [["user", "del", "bob"], { kind: "user-del", config: null, name: "bob" }],
    [["user", "show", "bob", "-c", "m.toml"], { kind: "user-show", config: "m.toml", name: "bob" }],
    [["user", "passwd", "bob", "-p", "new"], {
      kind: "user-passwd",
      config: null,
      name: "bob",
      password: "new",
    }],
    [["user", "change", "bob", "ratio", "3", "max_logins", "2"], {
      kind: "user-change",
      config: null,
      name: "bob",
      changes: [["ratio", "3"], ["max_logins", "2"]],
    }],
    [["group", "add", "staff", "--description", "the staff"], {
      kind: "group-add",
      config: null,
      name: "staff",
      description: "the staff",
    }],
    [["group", "del", "staff"], { kind: "group-del", config: null, name: "staff" }],
    [["group", "list"], { kind: "group-list", config: null }],
    [["group", "show", "staff"], { kind: "group-show", config: null, name: "staff" }],
  ];
  for (const [args, want] of cases) assert.deepEqual(parseCommand(args), want, args.join(" "));
});

Deno.test("parseCommand() rejects bad command lines naming the flag or value", () => {
  const cases: [string[], string, string][] = [
    [[], "drftpd", "a command is required (master, slave, local, user, group, init, config)"],
    [["serve"], "drftpd", `unknown command "serve"`],
    [["--bogus"], "drftpd", `unknown flag "--bogus"`],
    [["master", "--bogus"], "drftpd master", `unknown flag "--bogus"`],
    [["master", "-x"], "drftpd master", `unknown flag "-x"`],
    [["master", "--config"], "drftpd master", `flag "--config" needs a value`],
    [["master", "--help=yes"], "drftpd master", `flag "--help" does not take a value`],
    [["master", "extra"], "drftpd master", `unexpected argument "extra"`],
    [
      ["slave", "--log-level", "loud"],
      "drftpd slave",
      `--log-level "loud": must be one of debug, info, warning, error`,
    ],
    [["local", "--slaves", "0"], "drftpd local", `--slaves "0": must be between 1 and 100`],
    [["local", "--slaves", "two"], "drftpd local", `--slaves "two": not a whole number`],
    [["local", "--port", "70000"], "drftpd local", `--port "70000": must be between 1 and 65535`],
    [["local", "--dir="], "drftpd local", `--dir "": must not be empty`],
    [
      ["user"],
      "drftpd user",
      "a subcommand is required (add, del, passwd, show, list, change, unlock)",
    ],
    [["user", "rm", "bob"], "drftpd user", `unknown subcommand "rm"`],
    [["user", "del"], "drftpd user del", "the user NAME is required"],
    [["user", "passwd", "bob"], "drftpd user passwd", "--password is required"],
    [
      ["user", "change", "bob", "ratio"],
      "drftpd user change",
      "expected FIELD VALUE pairs after the NAME",
    ],
    [["group", "nuke"], "drftpd group", `unknown subcommand "nuke"`],
    [["group", "show"], "drftpd group show", "the group NAME is required"],
    [["user", "add", "--password", "x"], "drftpd user add", "the user NAME is required"],
    [["user", "add", "bob"], "drftpd user add", "--password is required"],
    [["user", "add", "bob", "eve", "-p", "x"], "drftpd user add", `unexpected argument "eve"`],
    [["user", "list", "bob"], "drftpd user list", `unexpected argument "bob"`],
  ];
  for (const [args, command, message] of cases) {
    assert.throws(() => parseCommand(args), (e) => {
      assert.ok(e instanceof UsageError, String(e));
      assert.equal(e.command, command, args.join(" "));
      assert.equal(e.message, message, args.join(" "));
      return true;
    });
  }
});

Deno.test("localSetup() builds disjoint loopback configs", () => {
  const cmd: LocalCommand = {
    kind: "local",
    slaves: 3,
    dir: "data",
    port: 2121,
    tlsPort: null,
    httpPort: 9121,
    logLevel: null,
  };
  const setup = localSetup(cmd, { cwd: "/work", linkPort: 40123, secret: "s" });
  assert.equal(setup.dir, "/work/data");
  assert.equal(setup.loginFile, "/work/data/login.txt");
  assert.equal(setup.master.master.data_dir, "/work/data/master");
  assert.deepEqual(setup.master.ftp.listen, { host: "127.0.0.1", port: 2121 });
  assert.deepEqual(setup.master.ftp.passive_ports, { from: 50000, to: 50099 });
  assert.deepEqual(setup.master.slaves, {
    listen: { host: "127.0.0.1", port: 40123 },
    secret: "s",
    tls: true,
    partial_remerge: true,
    copies_per_slave: 2,
    copies: {},
    copies_while_busy: 1,
    heal_after: 600,
    handshake_timeout: 10,
    unresponsive_after: 3,
    drop_after: 10,
  });
  assert.deepEqual(
    setup.slaves.map((s) => [s.slave.name, s.slave.root, s.slave.passive_ports.from]),
    [
      ["slave1", "/work/data/slave1", 50100],
      ["slave2", "/work/data/slave2", 50200],
      ["slave3", "/work/data/slave3", 50300],
    ],
  );
  for (const s of setup.slaves) {
    assert.equal(s.slave.listen_address, "127.0.0.1");
    assert.deepEqual(s.slave.master, { host: "127.0.0.1", port: 40123 });
    assert.equal(s.slave.secret, "s");
    assert.equal(s.slave.passive_ports.to, s.slave.passive_ports.from + 99);
  }
  const banner = localBanner(setup, "drftpd", "pw");
  assert.match(banner, /drftpd is running, 3 slaves online: ftp:\/\/drftpd:pw@127\.0\.0\.1:2121\//);
  assert.ok(
    banner.includes(
      `lftp -e "set ftp:use-pret true; set ssl:ca-file ${setup.caFile}" -u drftpd,pw 127.0.0.1 -p 2121`,
    ),
    banner,
  );
  assert.doesNotMatch(banner, /ftps:/);
  const tls = localSetup({ ...cmd, tlsPort: 2990 }, { cwd: "/", linkPort: 1, secret: "s" });
  assert.match(
    localBanner(tls, "drftpd", "pw"),
    /--cacert \S+ca\.pem ftps:\/\/drftpd:pw@127\.0\.0\.1:2990\//,
  );
  // The largest setup still fits in the port space.
  const big = localSetup({ ...cmd, slaves: 100 }, { cwd: "/", linkPort: 1, secret: "s" });
  assert.equal(big.slaves.at(-1)!.slave.passive_ports.to, 60099);
});

Deno.test("randomToken() returns URL-safe tokens of the asked length", () => {
  const a = randomToken(20);
  assert.match(a, /^[A-Za-z0-9]{20}$/);
  assert.notEqual(a, randomToken(20));
});

Deno.test("writeLoginFile() and readLoginFile() round-trip with mode 0600", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/login.txt`;
    assert.equal(await readLoginFile(file), null);
    await writeLoginFile(file, "drftpd", "abc123", "ftp://drftpd@127.0.0.1:2121/");
    assert.equal(await readLoginFile(file), "abc123");
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
