import assert from "node:assert/strict";
import {
  ConfigError,
  formatHostPort,
  isIpAddress,
  loadMasterConfig,
  loadSlaveConfig,
  parseHostPort,
  parseMasterConfig,
  parsePortRange,
  parseSlaveConfig,
  validateMasterConfig,
} from "./config.ts";
import type { MasterConfig, SlaveConfig } from "./config_types.ts";

const assertEquals = (actual: unknown, expected: unknown, message?: string) =>
  assert.deepStrictEqual(actual, expected, message);

function assertThrows<E extends Error>(fn: () => unknown, cls: new (...args: never[]) => E): E {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    return e;
  }
  throw new assert.AssertionError({ message: `expected ${cls.name} to be thrown` });
}

const BASE = "/srv/drftpd";

Deno.test("parseMasterConfig() fills every default", () => {
  const expected: MasterConfig = {
    file: null,
    master: { data_dir: "/srv/drftpd/data/master" },
    ftp: {
      listen: { host: "0.0.0.0", port: 2121 },
      passive_ports: { from: 50000, to: 50099 },
      public_address: "",
      pasv_without_pret: "slave",
      epsv_without_pret: "pasv",
      idle_timeout: 900,
      login_timeout: 60,
      max_connections: 2000,
      max_connections_per_address: 10,
      max_login_failures: 3,
      failed_login_delay_ms: 1000,
      ban_after_failures: 10,
      ban_seconds: 300,
      account_lock_after: 10,
      account_lock_seconds: 900,
      account_max_delay_seconds: 30,
      banner: "drftpd ready",
      fxp: "deny",
      fxp_rules: [],
      tls: "optional",
      tls_cert: "",
      tls_key: "",
      implicit_tls_listen: null,
      stop_grace: 30,
    },
    http: { listen: { host: "127.0.0.1", port: 9121 } },
    slaves: {
      listen: { host: "0.0.0.0", port: 1099 },
      secret: "change-me",
      tls: true,
      partial_remerge: true,
      copies_per_slave: 2,
      copies: {},
      copies_while_busy: 1,
      heal_after: 600,
      handshake_timeout: 10,
      unresponsive_after: 3,
      drop_after: 10,
    },
    selection: {
      min_free: 64 * 1024 * 1024,
      max_transfers: 0,
      weight_free: 1,
      weight_transfers: 3,
      weight_throughput: 1,
      rules: [],
    },
    log: { level: "info", format: "text", xferlog: "" },
    permissions: [],
    replication: [],
  };
  assertEquals(parseMasterConfig("", null, BASE), expected);
});

Deno.test("parseSlaveConfig() fills every default", () => {
  const expected: SlaveConfig = {
    file: null,
    slave: {
      name: "slave1",
      master: { host: "127.0.0.1", port: 1099 },
      secret: "change-me",
      root: "/srv/drftpd/data/slave1",
      listen_address: "0.0.0.0",
      public_address: "",
      passive_ports: { from: 50100, to: 50199 },
      tls: true,
      master_fingerprint: "",
      tls_cert: "",
      tls_key: "",
      data_engine: "native",
      stop_grace: 30,
    },
    log: { level: "info", format: "text" },
  };
  assertEquals(parseSlaveConfig("", null, BASE), expected);
});

Deno.test("parseMasterConfig() reads every key", () => {
  const text = `
[master]
data_dir = "/var/lib/drftpd"
[ftp]
listen = "[::1]:21"
passive_ports = "40000-40010"
public_address = "203.0.113.7"
pasv_without_pret = "reject"
epsv_without_pret = "master"
idle_timeout = 60
login_timeout = 10
max_connections = 5
max_connections_per_address = 3
max_login_failures = 1
failed_login_delay_ms = 0
ban_after_failures = 0
ban_seconds = 60
banner = "hello"
tls = "required"
tls_cert = "certs/c.pem"
tls_key = "/k.pem"
implicit_tls_listen = "127.0.0.1:990"
stop_grace = 5
fxp = "deny"
[[ftp.fxp_rules]]
path = "/incoming/**"
upload = false
[slaves]
listen = "10.0.0.1:0"
secret = "s3cret"
[http]
listen = ""
[log]
level = "debug"
format = "json"
xferlog = "logs/xferlog"
[[permissions]]
path = "/private/**"
list = ["=staff"]
upload = ["=staff", "!guest"]
`;
  const c = parseMasterConfig(text, "/etc/drftpd/master.toml", "/etc/drftpd");
  assertEquals(c.file, "/etc/drftpd/master.toml");
  assertEquals(c.master.data_dir, "/var/lib/drftpd");
  assertEquals(c.ftp, {
    listen: { host: "::1", port: 21 },
    passive_ports: { from: 40000, to: 40010 },
    public_address: "203.0.113.7",
    pasv_without_pret: "reject",
    epsv_without_pret: "master",
    idle_timeout: 60,
    login_timeout: 10,
    max_connections: 5,
    max_connections_per_address: 3,
    max_login_failures: 1,
    failed_login_delay_ms: 0,
    ban_after_failures: 0,
    ban_seconds: 60,
    account_lock_after: 10,
    account_lock_seconds: 900,
    account_max_delay_seconds: 30,
    banner: "hello",
    fxp: "deny",
    fxp_rules: [{ path: "/incoming/**", upload: false, download: true }],
    tls: "required",
    tls_cert: "/etc/drftpd/certs/c.pem",
    tls_key: "/k.pem",
    implicit_tls_listen: { host: "127.0.0.1", port: 990 },
    stop_grace: 5,
  });
  assertEquals(c.http, { listen: null });
  assertEquals(c.slaves, {
    listen: { host: "10.0.0.1", port: 0 },
    secret: "s3cret",
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
  assertEquals(c.log, { level: "debug", format: "json", xferlog: "/etc/drftpd/logs/xferlog" });
  assertEquals(parseMasterConfig(`[log]\nxferlog = "off"`, null, "/").log.xferlog, null);
  assertEquals(c.permissions, [{
    path: "/private/**",
    actions: {
      list: [{ negate: false, kind: "group", name: "staff" }],
      upload: [
        { negate: false, kind: "group", name: "staff" },
        { negate: true, kind: "user", name: "guest" },
      ],
    },
  }]);
});

Deno.test("relative paths resolve against the base folder", () => {
  const cases: { text: string; base: string; want: string }[] = [
    { text: `data_dir = "state"`, base: "/etc/drftpd", want: "/etc/drftpd/state" },
    { text: `data_dir = "./a/../b"`, base: "/etc/drftpd", want: "/etc/drftpd/b" },
    { text: `data_dir = "../var"`, base: "/etc/drftpd", want: "/etc/var" },
    { text: `data_dir = "/abs/dir/"`, base: "/etc/drftpd", want: "/abs/dir" },
    { text: ``, base: "/x", want: "/x/data/master" },
  ];
  for (const { text, base, want } of cases) {
    assertEquals(parseMasterConfig(`[master]\n${text}`, null, base).master.data_dir, want, text);
  }
  assertEquals(parseSlaveConfig(`[slave]\nroot = "files"`, null, "/s").slave.root, "/s/files");
});

const F = "master.toml";

/** [toml text, expected key, expected message]. */
const MASTER_ERRORS: [string, string | null, string][] = [
  [
    `[slaves]\nunresponsive_after = 5\ndrop_after = 5`,
    "slaves.drop_after",
    `master.toml: slaves.drop_after = 5: must be more than slaves.unresponsive_after (5)`,
  ],
  [`[fpt]`, "fpt", `master.toml: fpt: unknown section (did you mean "ftp"?)`],
  [
    `[ftp]\ntls = "maybe"`,
    "ftp.tls",
    `master.toml: ftp.tls = "maybe": must be one of "off", "optional", "required"`,
  ],
  [
    `[slaves]\ntls = "yes"`,
    "slaves.tls",
    `master.toml: slaves.tls = "yes": expected true or false, got a string`,
  ],
  [
    `[zzzzzz]`,
    "zzzzzz",
    `master.toml: zzzzzz: unknown section (known: master, ftp, http, slaves, selection, log)`,
  ],
  [`ftp = 3`, "ftp", `master.toml: ftp = 3: expected a [ftp] table`],
  [
    `[ftp]\nlisen = "x"`,
    "ftp.lisen",
    `master.toml: ftp.lisen: unknown key (did you mean "listen"?)`,
  ],
  [
    `[ftp]\nlisten = 21`,
    "ftp.listen",
    `master.toml: ftp.listen = 21: expected a string, got an integer`,
  ],
  [
    `[ftp]\nidle_timeout = "900"`,
    "ftp.idle_timeout",
    `master.toml: ftp.idle_timeout = "900": expected an integer, got a string`,
  ],
  [
    `[ftp]\nidle_timeout = 1.5`,
    "ftp.idle_timeout",
    `master.toml: ftp.idle_timeout = 1.5: expected an integer, got a float`,
  ],
  [
    `[ftp]\nmax_connections = 0`,
    "ftp.max_connections",
    `master.toml: ftp.max_connections = 0: must be between 1 and 1000000`,
  ],
  [
    `[ftp]\nfxp = "maybe"`,
    "ftp.fxp",
    `master.toml: ftp.fxp = "maybe": must be one of "allow", "deny"`,
  ],
  [
    `[[ftp.fxp_rules]]\npath = "incoming"`,
    "ftp.fxp_rules",
    `master.toml: ftp.fxp_rules = [{"path":"incoming"}]: rule 1: path must be a string starting with "/"`,
  ],
  [
    `[[permissions]]\npath = "private"\nlist = ["=staff"]`,
    "permissions[1]",
    `master.toml: permissions[1]: path must be a glob starting with "/", as in "/private/**"`,
  ],
  [
    `[[permissions]]\npath = "/p/**"\nlsit = ["=staff"]`,
    "permissions[1]",
    `master.toml: permissions[1]: unknown key "lsit" (expected path, list, download, upload, makedir, delete, delete_own, rename, rename_own, overwrite, fxp_upload, fxp_download)`,
  ],
  [
    `[[permissions]]\npath = "/p/**"\nlist = "=staff"`,
    "permissions[1]",
    `master.toml: permissions[1]: list must be an array of subjects, as in ["=staff", "!guest", "bob", "*"]`,
  ],
  [
    `[[permissions]]\npath = "/p/**"\nlist = ["*"]\n[[permissions]]\npath = "/q"\nupload = ["= staff"]`,
    "permissions[2]",
    `master.toml: permissions[2]: upload: invalid subject "= staff": use "*", "=group" or "user", optionally after "!"`,
  ],
  [
    `[[permissions]]\npath = "/p/**"`,
    "permissions[1]",
    `master.toml: permissions[1]: names no action (expected one of list, download, upload, makedir, delete, delete_own, rename, rename_own, overwrite, fxp_upload, fxp_download)`,
  ],
  [
    `[ftp]\nbanner = true`,
    "ftp.banner",
    `master.toml: ftp.banner = true: expected a string, got a boolean`,
  ],
  [
    `[ftp]\nbanner = "a\\r\\n230 hi"`,
    "ftp.banner",
    `master.toml: ftp.banner = "a\\r\\n230 hi": must not contain control characters`,
  ],
  [
    `[ftp]\npassive_ports = "50100-50000"`,
    "ftp.passive_ports",
    `master.toml: ftp.passive_ports = "50100-50000": range start is after its end`,
  ],
  [
    `[ftp]\npassive_ports = "0-10"`,
    "ftp.passive_ports",
    `master.toml: ftp.passive_ports = "0-10": port 0 is out of range 1-65535`,
  ],
  [
    `[ftp]\npassive_ports = "50000"`,
    "ftp.passive_ports",
    `master.toml: ftp.passive_ports = "50000": expected "from-to", as in "50000-50099"`,
  ],
  [
    `[ftp]\nlisten = "0.0.0.0:70000"`,
    "ftp.listen",
    `master.toml: ftp.listen = "0.0.0.0:70000": port 70000 is out of range 0-65535`,
  ],
  [
    `[ftp]\nlisten = "0.0.0.0"`,
    "ftp.listen",
    `master.toml: ftp.listen = "0.0.0.0": expected "host:port"`,
  ],
  [
    `[ftp]\nlisten = "::1:21"`,
    "ftp.listen",
    `master.toml: ftp.listen = "::1:21": IPv6 addresses must be bracketed, as in "[::1]:21"`,
  ],
  [
    `[ftp]\nlisten = "1.2.3.256:21"`,
    "ftp.listen",
    `master.toml: ftp.listen = "1.2.3.256:21": "1.2.3.256" is not an IPv4 address`,
  ],
  [
    `[ftp]\nlisten = "[::g]:21"`,
    "ftp.listen",
    `master.toml: ftp.listen = "[::g]:21": "::g" is not an IPv6 address`,
  ],
  [
    `[ftp]\nlisten = "host:ftp"`,
    "ftp.listen",
    `master.toml: ftp.listen = "host:ftp": port "ftp" is not a number`,
  ],
  [
    `[ftp]\npublic_address = "example.com"`,
    "ftp.public_address",
    `master.toml: ftp.public_address = "example.com": not an IPv4 or IPv6 address`,
  ],
  [
    `[ftp]\npasv_without_pret = "proxy"`,
    "ftp.pasv_without_pret",
    `master.toml: ftp.pasv_without_pret = "proxy": must be one of "slave", "relay", "reject"`,
  ],
  [
    `[slaves]\nsecret = ""`,
    "slaves.secret",
    `master.toml: slaves.secret = "": must not be empty`,
  ],
  [
    `[master]\ndata_dir = ""`,
    "master.data_dir",
    `master.toml: master.data_dir = "": must not be empty`,
  ],
  [
    `[log]\nlevel = "trace"`,
    "log.level",
    `master.toml: log.level = "trace": must be one of "debug", "info", "warning", "error"`,
  ],
  [`[ftp]\nlisten = `, null, `master.toml: invalid TOML at line 2, column 10: invalid value`],
];

Deno.test("parseMasterConfig() rejects bad input with a message naming file, key and value", () => {
  for (const [text, key, message] of MASTER_ERRORS) {
    const e = assertThrows(() => parseMasterConfig(text, F, BASE), ConfigError);
    assertEquals(e.message, message, text);
    assertEquals(e.file, F, text);
    assertEquals(e.key, key, text);
  }
});

const SLAVE_ERRORS: [string, string, string][] = [
  [`[master]`, "master", `slave.toml: master: unknown section (known: slave, log)`],
  [
    `[slave]\nname = "bad name"`,
    "slave.name",
    `slave.toml: slave.name = "bad name": must be 1-64 characters from A-Z, a-z, 0-9, '_', '.', '-'`,
  ],
  [
    `[slave]\nname = "${"x".repeat(65)}"`,
    "slave.name",
    `slave.toml: slave.name = "${
      "x".repeat(65)
    }": must be 1-64 characters from A-Z, a-z, 0-9, '_', '.', '-'`,
  ],
  [
    `[slave]\nmaster = "127.0.0.1:0"`,
    "slave.master",
    `slave.toml: slave.master = "127.0.0.1:0": port 0 is out of range 1-65535`,
  ],
  [
    `[slave]\nmaster = "-bad-:1099"`,
    "slave.master",
    `slave.toml: slave.master = "-bad-:1099": "-bad-" is not a valid host name`,
  ],
  [
    `[slave]\nlisten_address = ""`,
    "slave.listen_address",
    `slave.toml: slave.listen_address = "": not an IPv4 or IPv6 address`,
  ],
  [
    `[slave]\nlisten_address = "010.0.0.1"`,
    "slave.listen_address",
    `slave.toml: slave.listen_address = "010.0.0.1": not an IPv4 or IPv6 address`,
  ],
  [
    `[slave]\npublic_address = "1.2.3"`,
    "slave.public_address",
    `slave.toml: slave.public_address = "1.2.3": not an IPv4 or IPv6 address`,
  ],
  [
    `[slave]\npassive_ports = "60000-59999"`,
    "slave.passive_ports",
    `slave.toml: slave.passive_ports = "60000-59999": range start is after its end`,
  ],
  [`[slave]\nport = 1`, "slave.port", `slave.toml: slave.port: unknown key (did you mean "root"?)`],
];

Deno.test("parseSlaveConfig() rejects bad input with a message naming file, key and value", () => {
  for (const [text, key, message] of SLAVE_ERRORS) {
    const e = assertThrows(() => parseSlaveConfig(text, "slave.toml", BASE), ConfigError);
    assertEquals(e.message, message, text);
    assertEquals(e.key, key, text);
  }
});

Deno.test("parseSlaveConfig() accepts valid names and addresses", () => {
  const c = parseSlaveConfig(
    `[slave]\nname = "a_b.c-9"\nmaster = "master.example.org:1099"\nlisten_address = "::"\n` +
      `public_address = "2001:db8::1"`,
    null,
    BASE,
  );
  assertEquals(c.slave.name, "a_b.c-9");
  assertEquals(c.slave.master, { host: "master.example.org", port: 1099 });
  assertEquals(c.slave.listen_address, "::");
  assertEquals(c.slave.public_address, "2001:db8::1");
});

Deno.test("validateMasterConfig() validates programmatic overrides", () => {
  const c = validateMasterConfig({ ftp: { listen: "127.0.0.1:0" } }, null, "/b");
  assertEquals(c.ftp.listen, { host: "127.0.0.1", port: 0 });
  const e = assertThrows(
    () => validateMasterConfig({ ftp: { listen: "127.0.0.1:x" } }, null, "/b"),
    ConfigError,
  );
  assertEquals(e.message, `built-in config: ftp.listen = "127.0.0.1:x": port "x" is not a number`);
});

Deno.test("parseHostPort() and parsePortRange() work standalone", () => {
  const good: [string, string, number][] = [
    ["127.0.0.1:21", "127.0.0.1", 21],
    ["[::]:2121", "::", 2121],
    ["[::ffff:10.0.0.1]:1", "::ffff:10.0.0.1", 1],
    ["localhost:65535", "localhost", 65535],
  ];
  for (const [text, host, port] of good) {
    const hp = parseHostPort(text);
    assertEquals(hp, { host, port });
    assertEquals(formatHostPort(hp), text);
  }
  assertEquals(parseHostPort("0.0.0.0:0", { allowPortZero: true }).port, 0);
  const e = assertThrows(() => parseHostPort("0.0.0.0:0"), TypeError);
  assertEquals(e.message, `Invalid address "0.0.0.0:0": port 0 is out of range 1-65535`);
  assertEquals(parsePortRange("1-1"), { from: 1, to: 1 });
  assertEquals(parsePortRange("50000 - 50099"), { from: 50000, to: 50099 });
  const r = assertThrows(() => parsePortRange("9-8"), TypeError);
  assertEquals(r.message, `Invalid port range "9-8": range start is after its end`);
});

Deno.test("isIpAddress() accepts only literal addresses", () => {
  const cases: [string, boolean][] = [
    ["0.0.0.0", true],
    ["255.255.255.255", true],
    ["256.0.0.1", false],
    ["1.2.3", false],
    ["01.2.3.4", false],
    ["::", true],
    ["::1", true],
    ["fe80::1:2", true],
    ["1::2::3", false],
    ["example.com", false],
    ["", false],
    ["[::1]", false],
  ];
  for (const [text, want] of cases) assertEquals(isIpAddress(text), want, text);
});

Deno.test("loadMasterConfig() resolves paths against the file's folder", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/master.toml`;
    await Deno.writeTextFile(file, `[master]\ndata_dir = "state"\n`);
    const c = await loadMasterConfig(file);
    assertEquals(c.file, file);
    assertEquals(c.master.data_dir, `${dir}/state`);
    const d = await loadMasterConfig(null);
    assertEquals(d.file, null);
    assertEquals(d.master.data_dir, `${Deno.cwd()}/data/master`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadSlaveConfig() reports a missing file and TOML errors naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let err: unknown = null;
    await loadSlaveConfig(`${dir}/nope.toml`).catch((e) => err = e);
    assert(err instanceof ConfigError);
    assertEquals(err.message, `${dir}/nope.toml: cannot read config file: file not found`);
    await Deno.writeTextFile(`${dir}/slave.toml`, `[slave]\nname = "x"\nname = "y"\n`);
    err = null;
    await loadSlaveConfig(`${dir}/slave.toml`).catch((e) => err = e);
    assert(err instanceof ConfigError);
    assert(err.message.startsWith(`${dir}/slave.toml: invalid TOML at line 3`), err.message);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[[replication]] rules: path glob and copies, with clear errors", () => {
  const ok = parseMasterConfig(
    '[slaves]\ncopies_per_slave = 3\n[[replication]]\npath = "/archive/**"\ncopies = 2\n',
    null,
    BASE,
  );
  assertEquals(ok.replication, [{ path: "/archive/**", copies: 2 }]);
  assertEquals(ok.slaves.copies_per_slave, 3);
  const per = parseMasterConfig(
    "[slaves]\ncopies_while_busy = 0\n[slaves.copies]\nr3 = 4\nr1 = 0\n",
    null,
    BASE,
  );
  assertEquals(per.slaves.copies, { r3: 4, r1: 0 });
  assertEquals(per.slaves.copies_while_busy, 0);
  for (
    const [bad, why] of [
      ['[[replication]]\npath = "archive"\ncopies = 2\n', /replication\[1\].*path must be a glob/],
      ['[[replication]]\npath = "/a/**"\ncopies = 0\n', /replication\[1\].*copies must be/],
      ['[[replication]]\npath = "/a/**"\ncopies = 2\nextra = 1\n', /unknown key "extra"/],
      ["replication = 3\n", /expected \[\[replication\]\] tables/],
      ["[slaves.copies]\nr3 = 17\n", /slaves\.copies.*r3: must be between 0 and 16/],
      ['[slaves.copies]\n"bad name" = 1\n', /slaves\.copies.*"bad name" is not a slave name/],
      ["[slaves]\ncopies = 2\n", /slaves\.copies.*expected a table/],
      ["[slaves]\ncopies_while_busy = -1\n", /slaves\.copies_while_busy.*between 0 and 16/],
    ] as const
  ) {
    const e = assertThrows(() => parseMasterConfig(bad, null, BASE), ConfigError);
    assert.match(e.message, why, bad);
  }
});

Deno.test("[selection] and [[selection.rules]]: limits, weights and path rules, with clear errors", () => {
  const ok = parseMasterConfig(
    "[selection]\nmin_free = 1000\nmax_transfers = 4\nweight_throughput = 0.5\n" +
      '[[selection.rules]]\npath = "/hd/**"\nonly = ["slave3"]\n' +
      '[[selection.rules]]\npath = "/**"\nprefer = ["a"]\nexclude = ["b", "c"]\n',
    null,
    BASE,
  );
  assertEquals(ok.selection, {
    min_free: 1000,
    max_transfers: 4,
    weight_free: 1,
    weight_transfers: 3,
    weight_throughput: 0.5,
    rules: [
      { path: "/hd/**", prefer: [], only: ["slave3"], exclude: [] },
      { path: "/**", prefer: ["a"], only: [], exclude: ["b", "c"] },
    ],
  });
  for (
    const [bad, why] of [
      ["[selection]\nmin_free = -1\n", /selection\.min_free = -1: must be between/],
      ['[selection]\nmin_free = "10GiB"\n', /selection\.min_free = "10GiB": expected an integer/],
      ["[selection]\nweight_free = -0.5\n", /selection\.weight_free = -0\.5: must be between/],
      ['[[selection.rules]]\npath = "hd"\nonly = ["s"]\n', /rule 1: path must be a glob/],
      ['[[selection.rules]]\npath = "/hd/**"\n', /rule 1: names no slave/],
      ['[[selection.rules]]\npath = "/hd/**"\nonly = ["bad name"]\n', /only must be an array/],
      ['[[selection.rules]]\npath = "/hd/**"\nonly = [3]\n', /only must be an array/],
      ['[[selection.rules]]\npath = "/hd/**"\nsome = ["a"]\n', /unknown key "some"/],
      ["[selection]\nrules = 3\n", /expected \[\[selection.rules\]\] tables/],
    ] as const
  ) {
    const e = assertThrows(() => parseMasterConfig(bad, null, BASE), ConfigError);
    assert.match(e.message, why, bad);
  }
});
