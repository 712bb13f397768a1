/**
 * End-to-end: the master's HTTP side on a real site of two slaves. `/healthz` answers 200,
 * `/metrics` parses with python3-prometheus-client and counts an upload in the right series, and
 * the status page, loaded in headless chromium, shows both slaves online and a running upload
 * whose byte count grows (the test saves a screenshot).
 */
import assert from "node:assert/strict";
import {
  chromiumPath,
  curl,
  CURL_PRET,
  describeRun,
  freePort,
  makeSite,
  openPage,
  parsePrometheus,
  poll,
  prometheusPython,
  randomBytes,
  tempDir,
} from "../testing/mod.ts";

/** Script for the page: resolves with `probe()`'s value once it is not null, on DOM changes. */
function whenPage(probe: string): string {
  return `new Promise((resolve) => {
    const probe = ${probe};
    const check = () => {
      const v = probe();
      if (v !== null) { observer.disconnect(); resolve(v); }
    };
    const observer = new MutationObserver(check);
    observer.observe(document.body, { subtree: true, childList: true, attributes: true,
      characterData: true });
    check();
  })`;
}

Deno.test("HTTP side: /healthz, /metrics counting an upload, the live status page", async (t) => {
  const httpPort = freePort();
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1" }, { name: "s2", address: "127.0.0.1" }],
    http: `127.0.0.1:${httpPort}`,
    logLevel: "info",
  });
  await using tmp = await tempDir();
  const base = `http://127.0.0.1:${httpPort}`;

  await t.step("/healthz is 200", async () => {
    const r = await fetch(`${base}/healthz`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), "ok\n");
  });

  await t.step({
    name: "/metrics parses and counts an upload in the right series",
    ignore: prometheusPython() === null,
    fn: async () => {
      await Deno.writeFile(`${tmp.path}/up.bin`, randomBytes(100_000));
      const up = await curl([...CURL_PRET, "-T", `${tmp.path}/up.bin`, site.url("/up.bin")]);
      assert.equal(up.code, 0, describeRun("curl", up));
      const samples = await parsePrometheus(await (await fetch(`${base}/metrics`)).text());
      const value = (name: string, labels: Record<string, string> = {}) =>
        samples.find((s) =>
          s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
        )?.value;
      const upload = { direction: "upload", result: "complete", path: "direct" };
      assert.equal(value("drftpd_transfers_total", upload), 1);
      assert.equal(value("drftpd_transfer_bytes_total", upload), 100_000);
      assert.equal(value("drftpd_transfers_total", { direction: "download" }), undefined);
      assert.ok(value("drftpd_logins_total", { result: "ok" })! >= 1);
      assert.equal(value("drftpd_slave_online", { slave: "s1" }), 1);
      assert.equal(value("drftpd_slave_online", { slave: "s2" }), 1);
      assert.ok(value("drftpd_slave_total_bytes", { slave: "s1" })! > 0);
      assert.ok(value("drftpd_filelist_entries")! >= 1);
    },
  });

  await t.step(
    "xferlog: one wu-ftpd line per transfer, with size, direction, user, completion",
    async () => {
      const down = await curl([...CURL_PRET, "-o", `${tmp.path}/down.bin`, site.url("/up.bin")]);
      assert.equal(down.code, 0, describeRun("curl download", down));
      await Deno.writeFile(`${tmp.path}/big.bin`, randomBytes(24 << 20));
      const big = await curl([...CURL_PRET, "-T", `${tmp.path}/big.bin`, site.url("/big.bin")]);
      assert.equal(big.code, 0, describeRun("curl upload", big));
      // A download the client gives up on after 2 s: incomplete. (An upload cut short looks like
      // a finished one to any FTP server: the data connection just ends.)
      const cut = await curl([
        ...CURL_PRET,
        "--limit-rate",
        "100K",
        "--max-time",
        "2",
        "-o",
        `${tmp.path}/cut.bin`,
        site.url("/big.bin"),
      ]);
      assert.notEqual(cut.code, 0, "curl gave up");
      const file = `${site.masterDataDir}/xferlog`;
      const lines = await poll(async () => {
        const l = (await Deno.readTextFile(file).catch(() => "")).split("\n").filter((x) => x);
        return l.some((x) => / \/big\.bin b _ o /.test(x)) ? l : undefined;
      }, { describe: () => `the cut download's line in ${file}` });
      assert.equal(lines.length, 4, lines.join("\n"));
      const fields = lines.map((l) => l.split(/ +/));
      const row = (path: string, dir: string) => fields.find((f) => f[8] === path && f[11] === dir);
      const up = row("/up.bin", "i")!;
      assert.ok(up, lines.join("\n"));
      assert.deepEqual(up.slice(6), [
        "127.0.0.1",
        "100000",
        "/up.bin",
        "b",
        "_",
        "i",
        "r",
        "admin",
        "ftp",
        "0",
        "*",
        "c",
      ]);
      const dl = row("/up.bin", "o")!;
      assert.deepEqual(dl.slice(7), [
        "100000",
        "/up.bin",
        "b",
        "_",
        "o",
        "r",
        "admin",
        "ftp",
        "0",
        "*",
        "c",
      ]);
      assert.equal(row("/big.bin", "i")!.at(-1), "c");
      const partial = row("/big.bin", "o")!;
      assert.equal(partial.at(-1), "i", "incomplete");
      assert.ok(Number(partial[7]) < 24 << 20, "fewer bytes than the file");
    },
  );

  await t.step({
    name: "the status page in chromium shows both slaves and a running upload growing",
    ignore: chromiumPath() === null,
    fn: async () => {
      await Deno.writeFile(`${tmp.path}/slow.bin`, randomBytes(8 << 20));
      // Slow enough to be seen running for several progress reports (one a second).
      const uploader = new Deno.Command("curl", {
        args: [
          ...CURL_PRET,
          "--limit-rate",
          "256K",
          "-T",
          `${tmp.path}/slow.bin`,
          site.url("/slow.bin"),
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        await using page = await openPage(`${base}/`);
        const slaves = await page.evaluate<string[]>(whenPage(`() => {
          const rows = [...document.querySelectorAll("#slaves tbody tr[data-slave]")];
          const online = rows.filter((r) => r.children[1].textContent === "online");
          return online.length === 2 ? online.map((r) => r.dataset.slave) : null;
        }`));
        assert.deepEqual(slaves.sort(), ["s1", "s2"]);
        const rowBytes = `() => {
          const row = document.querySelector('#transfers tr[data-path="/slow.bin"]');
          return row && Number(row.dataset.bytes) > 0 ? Number(row.dataset.bytes) : null;
        }`;
        const first = await page.evaluate<number>(whenPage(rowBytes));
        const later = await page.evaluate<number>(whenPage(`() => {
          const n = (${rowBytes})();
          return n !== null && n > ${first} ? n : null;
        }`));
        assert.ok(later > first, `${later} > ${first}`);
        const text = await page.evaluate<string>("document.body.innerText");
        assert.match(text, /slow\.bin/);
        assert.match(text, /admin/, "the transfer's user");
        const png = await page.screenshot();
        assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
        const dir = Deno.env.get("DRFTPD_ARTIFACTS") ?? (await Deno.makeTempDir());
        await Deno.mkdir(dir, { recursive: true });
        await Deno.writeFile(`${dir}/status_page.png`, png);
        console.log(`status page screenshot: ${dir}/status_page.png (${first} → ${later} bytes)`);
      } finally {
        uploader.kill("SIGKILL");
        await uploader.status;
      }
    },
  });
});
