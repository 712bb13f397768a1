import assert from "node:assert/strict";
import { explainConfig, MASTER_SCHEMA, SLAVE_SCHEMA } from "./config.ts";
import { masterToml, slaveToml } from "./site_init.ts";

/** The text with every "# key = value" line turned into a setting. */
function uncommented(text: string): string {
  return text.replace(/^# ([a-z_]+ = .*)$/gm, "$1");
}

for (
  const [name, text, schema] of [
    ["master.toml", masterToml({ secret: "s3cret" }), MASTER_SCHEMA],
    ["slave.toml", slaveToml({ secret: "s3cret" }), SLAVE_SCHEMA],
  ] as const
) {
  Deno.test(`init's ${name} is valid, lists every key, and its commented values are the defaults`, () => {
    const { settings } = explainConfig(text, name, "/etc/drftpd");
    assert.ok(settings.some((s) => s.value === '"s3cret"' && s.source === "file"));
    for (const [section, fields] of Object.entries(schema)) {
      for (const key of Object.keys(fields)) {
        // arrays of tables: documented in the README
        if (key === "fxp_rules" || key === "rules") continue;
        assert.match(text, new RegExp(`^(# )?${key} = `, "m"), `${name} shows ${section}.${key}`);
      }
    }
    const all = explainConfig(uncommented(text), name, "/etc/drftpd").settings;
    assert.deepEqual(
      all.map(({ key, value }) => ({ key, value })),
      settings.map(({ key, value }) => ({ key, value })),
      "uncommenting the defaults changes nothing",
    );
  });
}

Deno.test("explainConfig() names the source of each value", () => {
  const { kind, settings } = explainConfig(
    `[ftp]\nlisten = "127.0.0.1:21"\n[log]\nxferlog = "off"\n`,
    "m.toml",
    "/srv",
  );
  assert.equal(kind, "master");
  const by = Object.fromEntries(settings.map((s) => [s.key, s]));
  assert.deepEqual(by["ftp.listen"], {
    key: "ftp.listen",
    value: '"127.0.0.1:21"',
    source: "file",
  });
  assert.deepEqual(by["ftp.passive_ports"], {
    key: "ftp.passive_ports",
    value: '"50000-50099"',
    source: "default",
  });
  assert.equal(by["master.data_dir"]!.value, '"/srv/data/master"');
  assert.equal(by["log.xferlog"]!.value, '"off"');
  assert.equal(by["ftp.fxp_rules"]!.value, "[]");
  assert.equal(explainConfig(`[slave]\nname = "s2"\n`, "s.toml", "/srv").kind, "slave");
});
