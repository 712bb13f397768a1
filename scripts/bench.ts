/**
 * `deno task bench [--quick] [--only single,control,lab,remerge] [--rounds N] [--file-mib N]
 * [--cases retr,stor,retr-tls,stor-tls] [--out FILE] [--keep-lab]` (`lab` is
 * `lab-pret,lab-nopret,lab-copies`; each can be named alone; `--keep-lab` keeps each lab site's
 * folder with its configs and logs)
 *
 * Measures drftpd against a vsftpd started by the bench on the same machine (same client, same
 * files, rounds alternating A/B so background noise hits both), and prints a Markdown table that
 * is also prepended to bench/RESULTS.md. Every figure is the median of its rounds.
 *
 * - single: 1 GiB RETR and STOR with curl through one slave (PRET), plain and TLS (PROT P), with the
 *   slave on each data engine (native, zero_copy: two sites) vs vsftpd (`use_sendfile=YES`); the
 *   data-phase rate and the CPU seconds per GiB of the process moving the bytes. Each case starts
 *   with one uncounted transfer per server; plain RETR runs 3× the rounds. A quick check
 *   that it runs: `--only single --file-mib 64 --rounds 1 --out /tmp/bench.md`. `--cases` runs
 *   only some of the four (e.g. `--cases stor` while working on uploads).
 * - control: CWD/PWD/SIZE/MDTM commands/s over 8 raw sessions; 1,000 idle logged-in sessions then
 *   NOOP latency p50/p99; LIST of a 10,000-entry folder.
 * - lab (root only): master, N slaves and a client in network namespaces, each slave link shaped to
 *   R Mbit/s (see scripts/lab.ts); the master's rx+tx bytes are read from its interface.
 *   - lab-pret: N = 1, 2, 4, 8 parallel curl downloads with PRET vs relayed through the master
 *     (`pasv_without_pret = "relay"`).
 *   - lab-nopret (issue 12): Python ftplib without PRET (`trust_server_pasv_ipv4_address`), N = 1,
 *     2, 4 in parallel, each downloading a file only one slave holds, with SIZE before RETR (as
 *     wget and ncftp do) and without; aggregate, master bytes, and the data path of each transfer
 *     (direct / sibling slave / relayed) from the master's /metrics.
 *   - lab-copies (issue 15): two slaves, `copies = 2` on /archive/**: an upload there, the master's
 *     bytes while the copy runs slave to slave, then two clients at once on the two holders.
 *   `deno task bench --only lab-nopret,lab-copies` runs just the last two.
 * - remerge: a slave root with 1,000,000 empty files: seconds until the slave is online, master
 *   RSS, then an incremental remerge (slave restart) with 10 changes.
 *
 * `--quick` (or BENCH_QUICK=1) scales sizes down (64 MiB files, 100k files) for a run < 5 min.
 * Needs vsftpd (`apt-get install vsftpd`) and root for the vsftpd comparison and the lab; the rest
 * runs without them and reports "n/a".
 *
 * @module
 */
import {
  FtpControl,
  makeSite,
  parse227,
  parsePrometheus,
  type PromSample,
  type Site,
} from "../testing/mod.ts";
import { deadline, sleep } from "../shared/timers.ts";
import {
  childPids,
  cpuSeconds,
  exec,
  findPids,
  fmt,
  killAll,
  machineInfo,
  median,
  mibps,
  percentile,
  rssBytes,
  spawnTracked,
} from "./_util.ts";
import { findVsftpd, startVsftpd, type Vsftpd } from "./_vsftpd.ts";
import { DATA_ENGINE_ENV, type DataEngineName } from "../slave/data_engine.ts";
import { cleanupLab, ifaceBytes, inNs, isRoot, type LabPlan, labPlan, withLab } from "./lab.ts";

// ------------------------------------------------------------------------------ options

const args = Deno.args;
function flagValue(name: string): string | undefined {
  const eq = args.find((a) => a.startsWith(`--${name}=`));
  if (eq) return eq.slice(name.length + 3);
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}
const QUICK = args.includes("--quick") || Deno.env.get("BENCH_QUICK") === "1";
/** Sub-sections of the network lab: `lab` (in --only, and by default) stands for all of them. */
const LAB_PARTS = ["lab-pret", "lab-nopret", "lab-copies"] as const;
const SECTIONS = ["single", "control", "remerge", ...LAB_PARTS];
const ONLY = new Set(
  (flagValue("only") ?? "single,control,lab,remerge").split(",").flatMap((s) =>
    s === "lab" ? LAB_PARTS : [s]
  ),
);
for (const s of ONLY) {
  if (!SECTIONS.includes(s)) {
    throw new RangeError(`Unknown section "${s}": --only takes ${SECTIONS.join(", ")} or lab`);
  }
}
const LAB_ANY = LAB_PARTS.some((p) => ONLY.has(p));
const ROUNDS = Number(flagValue("rounds") ?? (QUICK ? 3 : 5));
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const FILE_BYTES = Number(flagValue("file-mib") ?? (QUICK ? 64 : 1024)) * MiB;
const REMERGE_FILES = Number(flagValue("remerge-files") ?? (QUICK ? 100_000 : 1_000_000));
const IDLE_SESSIONS = Number(flagValue("sessions") ?? 1000);
const LIST_ENTRIES = 10_000;
const CMD_SESSIONS = 8;
const CMD_MS = QUICK ? 2000 : 4000;
const LAB_RATE = Number(flagValue("rate") ?? 100);
const LAB_NS = (flagValue("lab-n") ?? "1,2,4,8").split(",").map(Number);
/** `--keep-lab`: keep each lab site's folder (configs, slave roots, master and slave logs). */
const LAB_KEEP = args.includes("--keep-lab");
/** Slave counts of lab-nopret (issue 12 asks for N = 1, 2, 4). */
const LAB_NOPRET_NS = [1, 2, 4];
const LAB_BYTES = (QUICK ? 16 : 64) * MiB;
const LAB_ROUNDS = QUICK ? 1 : 3;
/** Which single-stream transfers run: "retr", "stor", "retr-tls", "stor-tls" (default all). */
const CASES = new Set((flagValue("cases") ?? "retr,stor,retr-tls,stor-tls").split(","));
const OUT = flagValue("out") ?? new URL("../bench/RESULTS.md", import.meta.url).pathname;

// ------------------------------------------------------------------------------ results

interface Row {
  /** Date and kernel of the run that measured it (every row carries them, see table()). */
  when: string;
  section: string;
  measure: string;
  drftpd: string;
  peer: string;
  ratio: string;
  target: string;
  met: string;
}
const rows: Row[] = [];
/** "2026-12-06, kernel 6.18.44-fc-v1272": set at start, printed on every row. */
let RUN_WHEN = "";
const notes: string[] = [];

function row(r: Partial<Row> & { section: string; measure: string }): void {
  const full: Row = { when: RUN_WHEN, drftpd: "", peer: "", ratio: "", target: "", met: "", ...r };
  rows.push(full);
  console.error(
    `  ${full.section} | ${full.measure} | ${full.drftpd} | ${full.peer} | ${full.ratio}`,
  );
}

function met(ok: boolean | null): string {
  return ok === null ? "n/a" : ok ? "yes" : "NO";
}

function log(msg: string): void {
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

// ------------------------------------------------------------------------------ fixtures

/** Writes `bytes` of incompressible data (a 4 MiB random block, repeated with a varying head). */
async function makeBigFile(path: string, bytes: number): Promise<void> {
  const block = new Uint8Array(4 * MiB);
  for (let o = 0; o < block.length; o += 65536) {
    crypto.getRandomValues(block.subarray(o, o + 65536));
  }
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let done = 0, i = 0; done < bytes; i++) {
    new DataView(block.buffer).setUint32(0, i);
    const n = Math.min(block.length, bytes - done);
    let off = 0;
    while (off < n) off += await f.write(block.subarray(off, n));
    done += n;
  }
}

/** Creates `count` empty files named f00000… in `dir` (sync calls: the fastest way from Deno). */
function makeEmptyFiles(dir: string, count: number, prefix = "f"): void {
  Deno.mkdirSync(dir, { recursive: true });
  const empty = new Uint8Array(0);
  for (let i = 0; i < count; i++) {
    Deno.writeFileSync(`${dir}/${prefix}${String(i).padStart(6, "0")}`, empty);
  }
}

/** The same tree for both servers: big.bin (hard link), d/f.bin, list10k/ with 10,000 files. */
async function fillTree(root: string, bigSrc: string): Promise<void> {
  await Deno.mkdir(`${root}/d`, { recursive: true });
  await Deno.link(bigSrc, `${root}/big.bin`);
  await Deno.writeFile(`${root}/d/f.bin`, new Uint8Array(1024));
  makeEmptyFiles(`${root}/list10k`, LIST_ENTRIES);
}

/** Temp dirs of running sites: on SIGINT every process whose command line names one is killed. */
const siteDirs = new Set<string>();

async function killSiteProcesses(): Promise<void> {
  for (const dir of siteDirs) {
    for (const pid of await findPids([dir])) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
}

/**
 * A drftpd site with one slave whose root holds the tree (remerged when the slave connects),
 * moving plain data bytes with `engine`.
 */
async function drftpdSite(bigSrc: string, engine: DataEngineName = "native"): Promise<Site> {
  const site = await makeSite({
    slaves: [{
      name: "s1",
      address: "127.0.0.1",
      start: false,
      extra: `data_engine = ${JSON.stringify(engine)}`,
    }],
    logLevel: "info",
    passivePorts: 100,
  });
  siteDirs.add(site.dir);
  try {
    await fillTree(site.slaveRoot("s1"), bigSrc);
    await site.startSlave("s1");
  } catch (e) {
    await site[Symbol.asyncDispose]();
    throw e;
  }
  return site;
}

/** The servers under comparison, seen the same way. */
interface Target {
  name: "drftpd" | "vsftpd";
  /** How rows and notes name it ("drftpd native", "vsftpd"). */
  label: string;
  host: string;
  port: number;
  user: string;
  pass: string;
  /** Folder holding big.bin, d/, list10k/ as clients see it. */
  base: string;
  /** Whether the client sends PRET (drftpd) or not (vsftpd does not know it). */
  pret: boolean;
  url(path: string): string;
  pid(): Promise<number | null>;
  /**
   * The process that moves the data bytes (drftpd: the slave; vsftpd: its listener, whose reaped
   * session processes count through `cpuWithChildren`).
   */
  dataPid(): Promise<number | null>;
  /** Whether the data process forks processes per session (their CPU is sampled too). */
  cpuWithChildren: boolean;
  /** Tail of the server's logs, for a failure note. */
  logs(): Promise<string>;
}

function siteTarget(site: Site, engine: DataEngineName = "native"): Target {
  const slaveConfig = `${site.dir}/slave-s1.toml`;
  return {
    name: "drftpd",
    label: `drftpd ${engine}`,
    host: site.host,
    port: site.ftpPort,
    user: site.user,
    pass: site.pass,
    base: "",
    pret: true,
    url: (p) => site.url(p),
    pid: async () => (await findPids(["master", "--config", site.masterConfig]))[0] ?? null,
    dataPid: async () => (await findPids(["slave", "--config", slaveConfig]))[0] ?? null,
    cpuWithChildren: false,
    logs: () => site.logs(3000),
  };
}

function vsftpdTarget(v: Vsftpd): Target {
  return {
    name: "vsftpd",
    label: "vsftpd",
    host: v.host,
    port: v.port,
    user: v.user,
    pass: v.pass,
    base: "/pub",
    pret: false,
    url: (p) => v.url(p),
    pid: () => Promise.resolve(v.pid),
    dataPid: () => Promise.resolve(v.pid),
    cpuWithChildren: true,
    logs: () => Promise.resolve(""),
  };
}

/** Runs `fn` for A and B in alternating order for `rounds` rounds; returns both value lists. */
async function alternate<T>(
  rounds: number,
  a: Target,
  b: Target | null,
  fn: (t: Target, round: number) => Promise<T>,
): Promise<{ a: T[]; b: T[] }> {
  const out = { a: [] as T[], b: [] as T[] };
  for (let r = 0; r < rounds; r++) {
    const order = b === null ? [a] : r % 2 === 0 ? [a, b] : [b, a];
    for (const t of order) {
      const v = await fn(t, r);
      (t === a ? out.a : out.b).push(v);
    }
  }
  return out;
}

// ------------------------------------------------------------------------------ single stream

/** Wait before each STOR (see curlTransfer). */
const STOR_SETTLE_MS = 3000;

const CURL_COMMON = ["-sS", "--noproxy", "*", "--no-ftp-skip-pasv-ip"];

/** What one transfer measured. */
interface Measured {
  /** Data-phase rate, bytes/s. */
  rate: number;
  /** CPU seconds of the data process per GiB moved (NaN when unreadable). */
  cpuPerGiB: number;
}

/**
 * One curl transfer (`tls`: AUTH TLS and PROT P); returns the data-phase rate
 * (bytes / (time_total - time_pretransfer)) and the data process's CPU seconds per GiB.
 */
async function curlTransfer(
  t: Target,
  kind: "retr" | "stor",
  options: { src: string; upName: string; tls: boolean },
): Promise<Measured> {
  await exec("sync", [], { timeoutMs: 120_000 });
  // This VM hands freed memory back to its host (virtio-balloon free page reporting, ~2 s after
  // the free); writing into such pages again costs a host fault each. Every STOR waits past that
  // delay so both servers meet the same memory state, whatever the previous round freed.
  if (kind === "stor") await sleep(STOR_SETTLE_MS);
  const maxTime = Math.max(60, Math.ceil(FILE_BYTES / MiB / 5)); // ≥ 5 MiB/s or fail
  const argv = [
    ...CURL_COMMON,
    ...(t.pret ? ["--ftp-pret"] : []),
    ...(options.tls ? ["--ssl-reqd", "--insecure"] : []),
    "--max-time",
    String(maxTime),
    "-w",
    "%{size_download} %{size_upload} %{time_pretransfer} %{time_total}",
    ...(kind === "retr"
      ? ["-o", "/dev/null", t.url(`${t.base}/big.bin`)]
      : ["-T", options.src, t.url(`${t.base}/${options.upName}`)]),
  ];
  const pid = await t.dataPid();
  const withChildren = t.cpuWithChildren;
  const cpuBefore = pid === null ? NaN : await cpuSeconds(pid, withChildren);
  const sessions = pid !== null && withChildren ? new SessionCpu(pid) : null;
  const r = await exec("curl", argv, { timeoutMs: (maxTime + 30) * 1000 });
  // A forking server: its reaped sessions' time (cutime), or what sampling saw if more.
  const sampled = await sessions?.stop() ?? 0;
  const cpuAfter = pid === null ? NaN : Math.max(
    await cpuSeconds(pid, withChildren),
    cpuBefore + sampled,
  );
  const [down, up, pre, total] = r.stdout.trim().split(" ").map(Number) as number[];
  const bytes = kind === "retr" ? down! : up!;
  if (r.code !== 0 || bytes !== FILE_BYTES) {
    throw new Error(`${t.label} ${kind}: curl exit ${r.code}, ${bytes} bytes: ${r.stderr.trim()}`);
  }
  if (kind === "stor") {
    const ftp = await FtpControl.login({ host: t.host, port: t.port }, {
      user: t.user,
      pass: t.pass,
      timeoutMs: 30_000,
    });
    try {
      await ftp.expect(`DELE ${t.base}/${options.upName}`, 250);
    } finally {
      await ftp.quit();
    }
  }
  return { rate: bytes / (total! - pre!), cpuPerGiB: (cpuAfter - cpuBefore) / (bytes / GiB) };
}

/**
 * CPU seconds of the session processes a forking server (vsftpd) starts for a transfer: every
 * SESSION_SAMPLE_MS the descendants of `pid` are listed and each one's utime + stime kept, until
 * they are gone after `stop()` (so the listener has reaped them: its cutime then holds their
 * time). A cross-check of cutime, which misses a session process that is orphaned instead of
 * reaped; the sampled figure misses time a process has not been charged yet when last seen.
 */
class SessionCpu {
  #pid: number;
  #seen = new Map<number, number>();
  #stopped = false;
  #loop: Promise<void>;

  constructor(pid: number) {
    this.#pid = pid;
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    const until = () => this.#stopped && Date.now() > this.#stopAt;
    for (;;) {
      const alive = await this.#sample();
      if (this.#stopped && (alive === 0 || until())) return;
      await sleep(SESSION_SAMPLE_MS);
    }
  }

  #stopAt = 0;

  /** Descendants of the listener now, each one's CPU recorded; returns how many. */
  async #sample(): Promise<number> {
    const queue = await childPids(this.#pid);
    let n = 0;
    while (queue.length > 0) {
      const p = queue.shift()!;
      const cpu = await cpuSeconds(p);
      if (Number.isNaN(cpu)) continue;
      n++;
      this.#seen.set(p, Math.max(cpu, this.#seen.get(p) ?? 0));
      queue.push(...await childPids(p));
    }
    return n;
  }

  /** Waits (at most 10 s) until the session processes are gone; their total CPU seconds. */
  async stop(): Promise<number> {
    this.#stopped = true;
    this.#stopAt = Date.now() + 10_000;
    await this.#loop;
    let total = 0;
    for (const cpu of this.#seen.values()) total += cpu;
    return total;
  }
}

const SESSION_SAMPLE_MS = 5;

/**
 * Rounds of plain RETR, as a multiple of `ROUNDS`. They are cheap (no settle wait) and the
 * noisiest figure with the tightest target: on this VM one server's consecutive 1 GiB RETRs
 * spread ±15% (2026-12-06, vsftpd alone, 12 in a row: 2061–2929 MiB/s, the same pinned to one
 * core: 2437–3328), so a median of 5 can land either side of 1.0× for the same code.
 */
const RETR_ROUNDS_FACTOR = 3;

/**
 * RETR and STOR of the big file, plain and TLS, through drftpd with each data engine and through
 * vsftpd, rounds rotating the order so drift hits every server alike. Each case starts with one
 * transfer per server that is not counted: a site's first transfers cost more (the native engine
 * up to 0.8 CPU s/GiB in its first 3–4 GiB, then 0.35, 2026-12-06). Each drftpd row has the
 * median of its per-round rate ratios to vsftpd, and of its per-round CPU/GiB ratios; the notes
 * give every round and the spread of the per-round ratios.
 */
async function benchSingle(drs: Target[], vs: Target | null, src: string): Promise<void> {
  const size = FILE_BYTES >= 1024 * MiB
    ? `${FILE_BYTES / 1024 / MiB} GiB`
    : `${FILE_BYTES / MiB} MiB`;
  const targets = vs ? [...drs, vs] : drs;
  for (const tls of [false, true]) {
    for (const kind of ["retr", "stor"] as const) {
      if (!CASES.has(`${kind}${tls ? "-tls" : ""}`)) continue;
      // STOR rounds are noisier (see curlTransfer): two more of them
      const rounds = kind === "stor" ? ROUNDS + 2 : tls ? ROUNDS : ROUNDS * RETR_ROUNDS_FACTOR;
      const what = `${kind.toUpperCase()} ${size}${tls ? " TLS" : ""}`;
      log(`single stream ${what}: one warm-up transfer per server`);
      for (const t of targets) await curlTransfer(t, kind, { src, upName: "warm-up.bin", tls });
      log(`single stream ${what} × ${rounds} rounds: ${targets.map((t) => t.label).join(", ")}`);
      const res = await rotate(
        rounds,
        targets,
        (t, r) => curlTransfer(t, kind, { src, upName: `up-${r}.bin`, tls }),
      );
      const peer = vs ? res.get(vs)! : null;
      for (const dr of drs) {
        const mine = res.get(dr)!;
        const ratios = peer ? mine.map((m, i) => m.rate / peer[i]!.rate) : [];
        const speed = peer ? median(ratios) : NaN;
        if (peer) {
          notes.push(
            `${what} ${dr.label}: per-round speed ratios to vsftpd ${
              ratios.map((r) => fmt(r)).join(", ")
            } (quartiles ${fmt(percentile(ratios, 25))} / ${fmt(percentile(ratios, 50))} / ${
              fmt(percentile(ratios, 75))
            })`,
          );
        }
        const cpu = peer ? median(mine.map((m, i) => m.cpuPerGiB / peer[i]!.cpuPerGiB)) : NaN;
        const zeroCopy = dr.label.endsWith("zero_copy") && !tls;
        const speedTarget = tls ? 1.3 : 1.0;
        row({
          section: `single stream${tls ? " TLS" : ""}`,
          measure: `${what}, curl, 1 slave, ${dr.label.replace("drftpd ", "")} engine`,
          drftpd: figure(mine),
          peer: peer ? figure(peer) : "n/a",
          ratio: peer ? `${fmt(speed)}x speed, ${fmt(cpu)}x CPU/GiB` : "n/a",
          target: zeroCopy
            ? kind === "retr" ? "≥ 1.0x speed, ≤ 1.2x CPU" : "≥ 1.0x speed"
            : tls
            ? "≥ 1.3x speed"
            : "",
          met: zeroCopy || tls
            ? met(
              peer ? speed >= speedTarget && (!zeroCopy || kind === "stor" || cpu <= 1.2) : null,
            )
            : "",
        });
      }
      notes.push(
        `${what} rounds (MiB/s @ CPU s/GiB): ` +
          targets.map((t) =>
            `${t.label} ${
              res.get(t)!.map((m) => `${fmt(m.rate / MiB, 0)} @ ${fmt(m.cpuPerGiB)}`).join(", ")
            }`
          ).join("; "),
      );
    }
  }
  notes.push(
    "single stream: CPU s/GiB = user + system seconds (/proc/<pid>/stat) of the process that " +
      "moves the bytes, over GiB moved: drftpd's slave (its master only handles the control " +
      "connection); vsftpd's listener plus its session processes once reaped (cutime + cstime), " +
      `or the sum of the sessions' own times sampled every ${SESSION_SAMPLE_MS} ms if larger ` +
      "(it includes vsftpd's control connection). /proc counts 10 ms ticks: small files give " +
      "coarse figures. Ratios are medians of per-round ratios. TLS " +
      "transfers use the OpenSSL engine whatever the data engine.",
  );
}

/** "1234.5 MiB/s, 0.21 CPU s/GiB" from the medians of some transfers. */
function figure(ms: readonly Measured[]): string {
  return `${mibps(median(ms.map((m) => m.rate)))}, ${
    fmt(median(ms.map((m) => m.cpuPerGiB)))
  } CPU s/GiB`;
}

/** Runs `fn` for every target in each of `rounds` rounds, the order rotating; values per target. */
async function rotate<T>(
  rounds: number,
  targets: readonly Target[],
  fn: (t: Target, round: number) => Promise<T>,
): Promise<Map<Target, T[]>> {
  const out = new Map<Target, T[]>(targets.map((t) => [t, []]));
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(r + i) % targets.length]!;
      out.get(t)!.push(await fn(t, r));
    }
  }
  return out;
}

// ------------------------------------------------------------------------------ control channel

async function loginMany(t: Target, n: number, concurrency = 32): Promise<FtpControl[]> {
  const out: FtpControl[] = [];
  let next = 0;
  let failure: unknown = null;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n && failure === null) {
      next++;
      try {
        out.push(
          await FtpControl.login({ host: t.host, port: t.port }, {
            user: t.user,
            pass: t.pass,
            timeoutMs: 60_000,
          }),
        );
      } catch (e) {
        failure = e;
      }
    }
  }));
  if (failure !== null) {
    for (const f of out) f.close();
    throw failure;
  }
  return out;
}

/** CWD/PWD/SIZE/MDTM in a loop over `CMD_SESSIONS` sessions for `CMD_MS`; commands per second. */
async function commandRate(t: Target): Promise<number> {
  const conns = await loginMany(t, CMD_SESSIONS);
  const cmds = [`CWD ${t.base}/d`, "PWD", "SIZE f.bin", "MDTM f.bin"];
  const want = [250, 257, 213, 213];
  try {
    const loop = async (c: FtpControl) => {
      for (let i = 0; i < cmds.length; i++) {
        const r = await c.send(cmds[i]!);
        if (r.code !== want[i]) throw new Error(`${t.name} ${cmds[i]}: ${r.lines.join(" | ")}`);
      }
    };
    await Promise.all(conns.map(loop)); // warm-up
    let count = 0;
    const start = performance.now();
    const stopAt = start + CMD_MS;
    await Promise.all(conns.map(async (c) => {
      while (performance.now() < stopAt) {
        await loop(c);
        count += cmds.length;
      }
    }));
    return count / ((performance.now() - start) / 1000);
  } finally {
    await Promise.all(conns.map((c) => c.quit()));
  }
}

/** PASV (with PRET for drftpd) + LIST of the 10k folder to the 226; ms. Checks the line count. */
async function listTime(t: Target): Promise<number> {
  const ftp = await FtpControl.login({ host: t.host, port: t.port }, {
    user: t.user,
    pass: t.pass,
    timeoutMs: 30_000,
  });
  try {
    const path = `${t.base}/list10k`;
    const start = performance.now();
    const ep = await ftp.pasv(t.pret ? `LIST ${path}` : undefined);
    using conn = await Deno.connect({ hostname: ep.host, port: ep.port });
    const r = await ftp.send(`LIST ${path}`);
    if (r.code !== 150 && r.code !== 125) throw new Error(`${t.name} LIST: ${r.lines.join(" | ")}`);
    const lines = await deadline(countLines(conn), { ms: 60_000, what: "LIST data" });
    const done = await ftp.read();
    const ms = performance.now() - start;
    if (done.code !== 226) throw new Error(`${t.name} LIST end: ${done.lines.join(" | ")}`);
    if (lines < LIST_ENTRIES) throw new Error(`${t.name} LIST gave ${lines} lines`);
    return ms;
  } finally {
    await ftp.quit();
  }
}

/** PRET+PASV, RETR of the 1 KiB d/f.bin, drain, 226 — `n` times on one session; median ms. */
async function smallRetr(t: Target, n = 50): Promise<number> {
  const ftp = await FtpControl.login({ host: t.host, port: t.port }, {
    user: t.user,
    pass: t.pass,
    timeoutMs: 30_000,
  });
  try {
    const path = `${t.base}/d/f.bin`;
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const start = performance.now();
      const ep = await ftp.pasv(t.pret ? `RETR ${path}` : undefined);
      using conn = await Deno.connect({ hostname: ep.host, port: ep.port });
      const r = await ftp.send(`RETR ${path}`);
      if (r.code !== 150 && r.code !== 125) {
        throw new Error(`${t.name} RETR: ${r.lines.join(" | ")}`);
      }
      const lines = await deadline(countLines(conn), { ms: 30_000, what: "RETR data" });
      const done = await ftp.read();
      if (done.code !== 226) throw new Error(`${t.name} RETR end: ${done.lines.join(" | ")}`);
      void lines;
      times.push(performance.now() - start);
    }
    return median(times);
  } finally {
    await ftp.quit();
  }
}

async function countLines(conn: Deno.Conn): Promise<number> {
  const buf = new Uint8Array(262144);
  let lines = 0;
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return lines;
    for (let i = 0; i < n; i++) if (buf[i] === 10) lines++;
  }
}

interface IdleResult {
  loginS: number;
  p50: number;
  p99: number;
  max: number;
  rss: number;
  rssBefore: number;
}

/** Opens `IDLE_SESSIONS` logged-in sessions, then one NOOP on each in turn: latency stats. */
async function idleNoop(t: Target): Promise<IdleResult> {
  const pid0 = await t.pid();
  const rssBefore = pid0 === null ? NaN : await rssBytes(pid0);
  const start = performance.now();
  const conns = await loginMany(t, IDLE_SESSIONS);
  const loginS = (performance.now() - start) / 1000;
  try {
    await sleep(500); // let the server settle after the login storm
    const lat: number[] = [];
    for (const c of conns) {
      const t0 = performance.now();
      const r = await c.send("NOOP");
      lat.push(performance.now() - t0);
      if (r.code !== 200) throw new Error(`${t.name} NOOP: ${r.lines.join(" | ")}`);
    }
    const pid = await t.pid();
    return {
      loginS,
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      max: Math.max(...lat),
      rss: pid === null ? NaN : await rssBytes(pid),
      rssBefore,
    };
  } finally {
    // closing (not QUIT) keeps the teardown quick; both servers handle a reset
    for (const c of conns) c.close();
    await sleep(1000);
  }
}

async function benchControl(dr: Target, vs: Target | null): Promise<void> {
  log(`control: commands/s over ${CMD_SESSIONS} sessions × ${ROUNDS} rounds`);
  const cmd = await alternate(ROUNDS, dr, vs, (t) => commandRate(t));
  const ca = median(cmd.a);
  const cb = median(cmd.b);
  row({
    section: "control",
    measure: `CWD/PWD/SIZE/MDTM commands/s, ${CMD_SESSIONS} sessions`,
    drftpd: fmt(ca, 0),
    peer: vs ? fmt(cb, 0) : "n/a",
    ratio: vs ? `${fmt(ca / cb)}x` : "n/a",
    target: "≥ 1.0x",
    met: met(vs ? ca / cb >= 1 : null),
  });

  log(`control: LIST of ${LIST_ENTRIES} entries × ${ROUNDS} rounds`);
  const list = await alternate(ROUNDS, dr, vs, (t) => listTime(t));
  const la = median(list.a);
  const lb = median(list.b);
  row({
    section: "control",
    measure: `LIST of a ${LIST_ENTRIES}-entry folder (PASV→226)`,
    drftpd: `${fmt(la, 0)} ms`,
    peer: vs ? `${fmt(lb, 0)} ms` : "n/a",
    ratio: vs ? `${fmt(la / lb)}x time` : "n/a",
    target: "≤ 1.0x time",
    met: met(vs ? la / lb <= 1 : null),
  });

  log(`control: small RETR latency × ${ROUNDS} rounds`);
  const small = await alternate(ROUNDS, dr, vs, (t) => smallRetr(t));
  const sa = median(small.a);
  const sb = median(small.b);
  row({
    section: "control",
    measure: "RETR of a 1 KiB file, one session (PASV→226), per transfer",
    drftpd: `${fmt(sa)} ms`,
    peer: vs ? `${fmt(sb)} ms` : "n/a",
    ratio: vs ? `${fmt(sa / sb)}x time` : "n/a",
  });

  log(`control: ${IDLE_SESSIONS} idle sessions, then NOOP latency`);
  const idleA = await idleNoop(dr);
  const idleB = vs
    ? await idleNoop(vs).catch((e) => (notes.push(`vsftpd idle: ${e}`), null))
    : null;
  row({
    section: "control",
    measure: `NOOP p50 with ${IDLE_SESSIONS} idle sessions`,
    drftpd: `${fmt(idleA.p50)} ms`,
    peer: idleB ? `${fmt(idleB.p50)} ms` : "n/a",
    ratio: idleB ? `${fmt(idleA.p50 / idleB.p50)}x time` : "n/a",
  });
  row({
    section: "control",
    measure: `NOOP p99 with ${IDLE_SESSIONS} idle sessions`,
    drftpd: `${fmt(idleA.p99)} ms`,
    peer: idleB ? `${fmt(idleB.p99)} ms` : "n/a",
    ratio: idleB ? `${fmt(idleA.p99 / idleB.p99)}x time` : "n/a",
    target: "< 20 ms",
    met: met(idleA.p99 < 20),
  });
  row({
    section: "control",
    measure: `${IDLE_SESSIONS} logins (32 in parallel)`,
    drftpd: `${fmt(idleA.loginS, 1)} s`,
    peer: idleB ? `${fmt(idleB.loginS, 1)} s` : "n/a",
    ratio: idleB ? `${fmt(idleA.loginS / idleB.loginS)}x time` : "n/a",
  });
  row({
    section: "control",
    measure: `master RSS with ${IDLE_SESSIONS} sessions`,
    drftpd: `${fmt(idleA.rss / MiB, 0)} MiB (${fmt(idleA.rssBefore / MiB, 0)} MiB before)`,
    peer: "",
  });
  notes.push(
    `NOOP max: drftpd ${fmt(idleA.max)} ms${idleB ? `, vsftpd ${fmt(idleB.max)} ms` : ""}; ` +
      `commands/s rounds: drftpd ${cmd.a.map((x) => fmt(x, 0)).join(", ")}` +
      (vs ? `; vsftpd ${cmd.b.map((x) => fmt(x, 0)).join(", ")}` : ""),
  );
}

// ------------------------------------------------------------------------------ remerge

/** Polls SITE SLAVES on one admin session until `name` is online; returns ms from `since`. */
async function waitOnline(ftp: FtpControl, name: string, since: number, timeoutMs: number) {
  const online = new RegExp(`(^|[\\s:-])${name} online\\b`);
  const until = since + timeoutMs;
  for (;;) {
    const r = await ftp.send("SITE SLAVES");
    if (r.lines.some((l) => online.test(l))) return performance.now() - since;
    if (performance.now() > until) throw new Error(`${name} not online after ${timeoutMs} ms`);
    await sleep(50);
  }
}

async function benchRemerge(): Promise<void> {
  const perDir = 1000;
  const dirs = Math.ceil(REMERGE_FILES / perDir);
  await using site = await makeSite({
    slaves: [{ name: "s1", address: "127.0.0.1", start: false }],
    logLevel: "warning",
  });
  siteDirs.add(site.dir);
  const root = site.slaveRoot("s1");
  log(`remerge: creating ${REMERGE_FILES} empty files in ${dirs} folders`);
  let t0 = performance.now();
  for (let d = 0; d < dirs; d++) {
    const count = Math.min(perDir, REMERGE_FILES - d * perDir);
    makeEmptyFiles(
      `${root}/a${String(d % 32).padStart(2, "0")}/d${String(d).padStart(5, "0")}`,
      count,
    );
  }
  notes.push(`created ${REMERGE_FILES} files in ${fmt((performance.now() - t0) / 1000, 1)} s`);
  const admin = await FtpControl.login({ host: site.host, port: site.ftpPort }, {
    user: site.user,
    pass: site.pass,
    timeoutMs: 60_000,
  });
  try {
    log("remerge: full");
    t0 = performance.now();
    await site.startSlave("s1", { waitOnline: false });
    const fullMs = await waitOnline(admin, "s1", t0, 15 * 60_000);
    const pid = (await findPids(["master", "--config", site.masterConfig]))[0];
    await sleep(2000); // let KV settle and a GC happen before reading RSS
    const rss = pid === undefined ? NaN : await rssBytes(pid);
    const n = REMERGE_FILES >= 1e6 ? `${REMERGE_FILES / 1e6}M` : `${REMERGE_FILES / 1000}k`;
    row({
      section: "filelist",
      measure: `full remerge of ${n} files (slave start → online)`,
      drftpd: `${fmt(fullMs / 1000, 1)} s`,
      target: "< 60 s",
      met: met(fullMs < 60_000),
    });
    row({
      section: "filelist",
      measure: `master RSS after remerge of ${n} files`,
      drftpd: `${fmt(rss / MiB, 0)} MiB`,
      target: "< 1 GiB",
      met: met(rss < 1024 * MiB),
    });

    log("remerge: incremental (restart with 10 changes)");
    await site.killSlave("s1", "SIGTERM");
    await site.waitSlaves(["s1"], "offline", 60_000);
    // 10 changes: 4 files deleted, 3 added, a new folder with 2 files, a folder deleted (with
    // its 1000 files)
    for (let i = 0; i < 4; i++) {
      await Deno.remove(`${root}/a00/d00000/f${String(i).padStart(6, "0")}`);
    }
    for (let i = 0; i < 3; i++) {
      await Deno.writeFile(`${root}/a01/new-${i}.bin`, new Uint8Array(10));
    }
    await Deno.mkdir(`${root}/a02/new-dir`);
    for (let i = 0; i < 2; i++) {
      await Deno.writeFile(`${root}/a02/new-dir/n-${i}.bin`, new Uint8Array(20));
    }
    await Deno.remove(`${root}/a03/d00003`, { recursive: true });
    t0 = performance.now();
    await site.startSlave("s1", { waitOnline: false });
    const incMs = await waitOnline(admin, "s1", t0, 10 * 60_000);
    row({
      section: "filelist",
      measure: `incremental remerge of ${n} files, 10 changes`,
      drftpd: `${fmt(incMs / 1000, 2)} s`,
      target: "< 2 s",
      met: met(incMs < 2000),
    });
    for (
      const [path, code] of [
        ["/a01/new-0.bin", 213],
        ["/a02/new-dir/n-1.bin", 213],
        ["/a00/d00000/f000000", 550],
        ["/a03/d00003/f000010", 550],
      ] as const
    ) {
      const r = await admin.send(`SIZE ${path}`);
      if (r.code !== code) notes.push(`after incremental remerge SIZE ${path}: ${r.lines[0]}`);
    }
  } finally {
    await admin.quit();
    log("remerge: cleaning up");
  }
}

// ------------------------------------------------------------------------------ network lab

/** A drftpd site whose master and slaves run in the lab's namespaces. */
interface LabSite {
  url(path: string): string;
  /** Address of the slave named `name` (what a 227 towards it names). */
  slaveOf(address: string): string;
  /** Slave root folder (the namespaces share the host's filesystem). */
  root(slave: string): string;
  /** The master's /metrics, fetched over the loopback of its namespace (not counted on eth0). */
  metrics(): Promise<PromSample[]>;
  user: string;
  pass: string;
}

/** What a lab site needs beyond the common configuration. */
interface LabSiteOptions {
  /** `[ftp] pasv_without_pret`; unset = the default of the code under test. */
  pasvWithoutPret?: string;
  /** master.toml text after every section (`[[replication]]` tables). */
  masterTail?: string;
  /** Hard-link the source file into each slave's root as `f-<slave>.bin` before it starts. */
  place: boolean;
}

/** Where the master's HTTP side listens, inside its own namespace. */
const LAB_HTTP = "127.0.0.1:9100";

async function startLabSite(
  plan: LabPlan,
  dir: string,
  src: string,
  options: LabSiteOptions,
): Promise<LabSite> {
  const secret = crypto.randomUUID();
  const pass = `pw-${crypto.randomUUID().slice(0, 8)}`;
  const m = plan.master.address;
  const masterConf = `${dir}/master.toml`;
  const pasv = options.pasvWithoutPret === undefined
    ? ""
    : `pasv_without_pret = "${options.pasvWithoutPret}"\n`;
  await Deno.writeTextFile(
    masterConf,
    `[master]\ndata_dir = "master-data"\n[ftp]\nlisten = "${m}:2121"\n` +
      `passive_ports = "50000-50099"\npublic_address = "${m}"\n${pasv}` +
      `max_connections_per_address = 100000\n[http]\nlisten = "${LAB_HTTP}"\n` +
      `[slaves]\nlisten = "${m}:1099"\nsecret = "${secret}"\n[log]\nlevel = "warning"\n` +
      (options.masterTail ?? ""),
  );
  const repo = new URL("..", import.meta.url).pathname;
  await exec(Deno.execPath(), [
    "run",
    "-A",
    `${repo}main.ts`,
    "user",
    "add",
    "admin",
    "--password",
    pass,
    "--admin",
    "--config",
    masterConf,
  ], { check: true, timeoutMs: 60_000 });
  const deno = (ns: string, a: string[], name: string) => {
    const logFile = Deno.openSync(`${dir}/${name}.log`, { write: true, create: true });
    const argv = inNs(ns, [Deno.execPath(), "run", "-A", `${repo}main.ts`, ...a]);
    const child = spawnTracked(argv[0]!, argv.slice(1), {
      cwd: repo,
      stdout: "null",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    });
    void child.stderr.pipeTo(logFile.writable).catch(() => {});
    return child;
  };
  deno(plan.master.ns, ["master", "--config", masterConf], "master");
  for (const s of plan.slaves) {
    const root = `${dir}/root-${s.name}`;
    await Deno.mkdir(root, { recursive: true });
    if (options.place) await Deno.link(src, `${root}/f-${s.name}.bin`);
    const conf = `${dir}/${s.name}.toml`;
    await Deno.writeTextFile(
      conf,
      `[slave]\nname = "${s.name}"\nmaster = "${m}:1099"\nsecret = "${secret}"\n` +
        `root = "root-${s.name}"\nlisten_address = "${s.address}"\n` +
        `passive_ports = "50100-50199"\n[log]\nlevel = "warning"\n`,
    );
    deno(s.ns, ["slave", "--config", conf], s.name);
  }
  const byAddress = new Map(plan.slaves.map((s) => [s.address, s.name]));
  const site: LabSite = {
    url: (p) => `ftp://admin:${pass}@${m}:2121${p}`,
    slaveOf: (address) =>
      byAddress.get(address) ?? (address === m ? "master" : address || "no 227 (EPSV)"),
    root: (slave) => `${dir}/root-${slave}`,
    metrics: async () => {
      const r = await exec(
        "ip",
        inNs(plan.master.ns, [
          "curl",
          "-sS",
          "--noproxy",
          "*",
          "--max-time",
          "10",
          `http://${LAB_HTTP}/metrics`,
        ]).slice(1),
        { check: true, timeoutMs: 15_000 },
      );
      return await parsePrometheus(r.stdout);
    },
    user: "admin",
    pass,
  };
  // wait (from the client namespace) until SITE SLAVES shows every slave online
  const until = Date.now() + 60_000;
  for (;;) {
    const r = await exec(
      "ip",
      inNs(plan.client.ns, [
        "curl",
        "-sS",
        "-v",
        "--max-time",
        "5",
        "-Q",
        "SITE SLAVES",
        site.url("/"),
      ])
        .slice(1),
      { timeoutMs: 10_000 },
    );
    const online = (r.stderr.match(/\bs\d+ online\b/g) ?? []).length;
    if (online >= plan.slaves.length) return site;
    if (Date.now() > until) {
      throw new Error(
        `lab slaves not online (${online}/${plan.slaves.length}): ${r.stderr.slice(-2000)}`,
      );
    }
    await sleep(500);
  }
}

/** One download in the lab: its data phase (wall clock, ms) and the address its 227 named. */
interface LabSpan {
  start: number;
  end: number;
  /** Host of the 227 reply ("" when the client got no 227, e.g. EPSV on the master). */
  host: string;
}

interface LabResult {
  /** Sum of the streams' data-phase rates over N×R: the aggregate while all N run. */
  fraction: number;
  /** That sum, bytes/s. */
  rate: number;
  /** Payload over the wall-clock window (first data byte to last), over N×R. */
  wallFraction: number;
  masterShare: number;
}

/** Aggregate figures of downloads of `bytesEach` that ran side by side on as many R links. */
function labResult(spans: readonly LabSpan[], bytesEach: number, masterBytes: number): LabResult {
  const n = spans.length;
  const window = (Math.max(...spans.map((s) => s.end)) - Math.min(...spans.map((s) => s.start))) /
    1000;
  const payload = n * bytesEach;
  const rate = spans.reduce((sum, s) => sum + bytesEach / ((s.end - s.start) / 1000), 0);
  const capacity = (n * LAB_RATE * 1e6) / 8;
  return {
    fraction: rate / capacity,
    rate,
    wallFraction: payload / window / capacity,
    masterShare: masterBytes / payload,
  };
}

/** rx + tx bytes of the master's interface while `fn` runs. */
async function masterBytesDuring<T>(
  plan: LabPlan,
  fn: () => Promise<T>,
): Promise<{ value: T; bytes: number }> {
  const before = await ifaceBytes(plan.master.ns);
  const value = await fn();
  const after = await ifaceBytes(plan.master.ns);
  return { value, bytes: after.rx - before.rx + after.tx - before.tx };
}

function logSpans(what: string, site: LabSite, spans: readonly LabSpan[]): void {
  const first = Math.min(...spans.map((s) => s.start));
  log(
    `${what}: data starts +${spans.map((s) => fmt(s.start - first, 0)).join("/")} ms; ` +
      `per-stream ${
        spans.map((s) => fmt(LAB_BYTES / MiB / ((s.end - s.start) / 1000), 2)).join("/")
      } MiB/s; 227 named ${spans.map((s) => site.slaveOf(s.host)).join("/")}`,
  );
}

/** One curl download of `path` from the client namespace (with or without PRET). */
async function labCurl(plan: LabPlan, site: LabSite, path: string, pret: boolean) {
  // The shell prints the wall clock right before it becomes curl: process start-up skew
  // (8 spawns on 2 cores) is not counted as transfer time.
  const r = await exec(
    "ip",
    inNs(plan.client.ns, [
      "sh",
      "-c",
      'date +%s.%N; exec "$@"',
      "sh",
      "curl",
      ...CURL_COMMON,
      "-v",
      ...(pret ? ["--ftp-pret"] : []),
      "--max-time",
      "300",
      "-o",
      "/dev/null",
      "-w",
      "%{size_download} %{time_pretransfer} %{time_total}",
      site.url(path),
    ]).slice(1),
    { timeoutMs: 330_000 },
  );
  const [clock, stats] = r.stdout.trim().split("\n") as [string, string | undefined];
  const [bytes, pre, total] = (stats ?? "").split(" ").map(Number) as number[];
  if (r.code !== 0 || bytes !== LAB_BYTES) {
    throw new Error(`lab download of ${path}: exit ${r.code}, ${bytes} bytes ${r.stderr}`);
  }
  const t0 = Number(clock) * 1000;
  const reply = /^< (227 .*)$/m.exec(r.stderr)?.[1];
  const span: LabSpan = {
    start: t0 + pre! * 1000,
    end: t0 + total! * 1000,
    host: reply === undefined ? "" : parse227(reply).host,
  };
  return span;
}

/** N parallel curl downloads (one per slave, of the file it holds); aggregate + master bytes. */
async function labRound(
  plan: LabPlan,
  site: LabSite,
  n: number,
  pret: boolean,
): Promise<LabResult> {
  const { value: spans, bytes } = await masterBytesDuring(
    plan,
    () =>
      Promise.all(
        plan.slaves.slice(0, n).map((s) => labCurl(plan, site, `/f-${s.name}.bin`, pret)),
      ),
  );
  logSpans(`lab N=${n} ${pret ? "PRET" : "relay"}`, site, spans);
  return labResult(spans, LAB_BYTES, bytes);
}

/** Runs `fn` with a fresh lab of `slaves` slaves and a temp folder; kills what it started. */
async function inLab(slaves: number, fn: (plan: LabPlan, dir: string) => Promise<void>) {
  const plan = labPlan({ slaves, rateMbit: LAB_RATE });
  await withLab(plan, async () => {
    const dir = await Deno.makeTempDir({ prefix: "drftpd-lab-" });
    try {
      await Deno.chmod(dir, 0o755);
      log(`lab: ${plan.slaves.length} slaves at ${LAB_RATE} Mbit/s`);
      await fn(plan, dir);
    } finally {
      await killAll();
      if (LAB_KEEP) log(`lab: kept ${dir} (configs, roots, logs)`);
      else await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  });
}

const LAB_NOTE = `each slave link shaped to ${LAB_RATE} Mbit/s (tbf, both directions), the ` +
  `master's and the client's links unshaped, so relayed bytes are seen, not capped. TCP/IP ` +
  `and Ethernet headers take ~4% of a shaped link, so ~0.96 is the most payload a link can carry. ` +
  `"Aggregate" is the sum of the streams' data-phase rates (after the 150 reply to the 226; ` +
  `they run side by side: the log shows when each started); "wall" is the payload over the ` +
  `window from the first data byte to the last, which also counts the time between the first ` +
  `and the last stream starting (login, PRET, PASV). "master bytes" = rx+tx of the master's ` +
  `veth: control traffic only when no data passes the master, ≈ 2× the payload when it relays ` +
  `(in from the slave, out to the client).`;

async function benchLab(src: string): Promise<void> {
  await inLab(Math.max(...LAB_NS), async (plan, dir) => {
    notes.push(
      `lab: ${LAB_NOTE} ${fmt(LAB_BYTES / MiB, 0)} MiB per download, ${LAB_ROUNDS} round(s) ` +
        `alternating curl --ftp-pret and curl without PRET relayed by the master ` +
        `(pasv_without_pret = "relay"). Relay reaches the same aggregate here only because the ` +
        `master's link is unshaped; with a master link of R it would be capped at 1/N of the ` +
        `PRET figure.`,
    );
    const site = await startLabSite(plan, dir, src, { place: true, pasvWithoutPret: "relay" });
    for (const n of LAB_NS) {
      const res: { pret: LabResult[]; relay: LabResult[] } = { pret: [], relay: [] };
      for (let r = 0; r < LAB_ROUNDS; r++) {
        const order = r % 2 === 0 ? [true, false] : [false, true];
        for (const pret of order) {
          log(`lab: N=${n} ${pret ? "PRET" : "relay"} round ${r + 1}`);
          (pret ? res.pret : res.relay).push(await labRound(plan, site, n, pret));
        }
      }
      const cap = `${n}×${LAB_RATE} Mbit/s`;
      row({
        section: "lab",
        measure: `N=${n} parallel downloads: aggregate / (${cap}); PRET vs relay`,
        drftpd: shownLab(res.pret),
        peer: `relay ${shownLab(res.relay)}`,
        target: "≥ 0.95",
        met: met(medLab(res.pret, "fraction") >= 0.95),
      });
      row({
        section: "lab",
        measure: `N=${n}: master interface bytes / payload; PRET vs relay`,
        drftpd: fmt(medLab(res.pret, "masterShare"), 4),
        peer: `relay ${fmt(medLab(res.relay, "masterShare"), 2)}`,
        target: "< 0.005 (PRET)",
        met: met(medLab(res.pret, "masterShare") < 0.005),
      });
    }
  });
}

function medLab(xs: readonly LabResult[], k: "fraction" | "wallFraction" | "masterShare") {
  return median(xs.map((x) => x[k]));
}

/** "0.958 (45.6 MiB/s; wall 0.951)": medians of some rounds (3 decimals: the target is 0.95). */
function shownLab(xs: readonly LabResult[]): string {
  return `${fmt(medLab(xs, "fraction"), 3)} (${mibps(median(xs.map((x) => x.rate)))}; wall ${
    fmt(medLab(xs, "wallFraction"), 3)
  })`;
}

/**
 * Python ftplib as a stock client uses it: no PRET, PASV with
 * `trust_server_pasv_ipv4_address = True`, optionally SIZE before RETR (as wget and ncftp do).
 * Prints the data phase (after the 150 reply to the 226) and the 227 it was given, as JSON.
 */
const FTPLIB_RETR = `
import ftplib, json, sys, time
cfg = json.loads(sys.argv[1])
ftp = ftplib.FTP()
ftp.connect(cfg["host"], cfg["port"], timeout=120)
ftp.login(cfg["user"], cfg["pass"])
ftp.trust_server_pasv_ipv4_address = True
replies = {}
send = ftp.sendcmd
def sendcmd(cmd):
    resp = send(cmd)
    replies[cmd.split(" ")[0]] = resp
    return resp
ftp.sendcmd = sendcmd
if cfg["size"]:
    ftp.size(cfg["path"])
ftp.voidcmd("TYPE I")
conn, _ = ftp.ntransfercmd("RETR " + cfg["path"])
start = time.time()
n = 0
with conn:
    while True:
        b = conn.recv(1 << 18)
        if not b:
            break
        n += len(b)
eof = time.time()
done = ftp.voidresp()
end = time.time()
ftp.quit()
print(json.dumps({"bytes": n, "start": start, "eof": eof, "end": end, "pasv": replies.get("PASV", ""),
                  "retr": replies.get("RETR", ""), "done": done}))
`;

/** One ftplib download (no PRET) of `path` from the client namespace. */
async function labFtplib(
  plan: LabPlan,
  site: LabSite,
  path: string,
  size: boolean,
): Promise<LabSpan & { start150: string; done: string; lag: number }> {
  const cfg = {
    host: plan.master.address,
    port: 2121,
    user: site.user,
    pass: site.pass,
    path,
    size,
  };
  const r = await exec(
    "ip",
    inNs(plan.client.ns, ["python3", "-c", FTPLIB_RETR, JSON.stringify(cfg)]).slice(1),
    { timeoutMs: 330_000 },
  );
  let out: {
    bytes: number;
    start: number;
    eof: number;
    end: number;
    pasv: string;
    retr: string;
    done: string;
  };
  try {
    out = JSON.parse(r.stdout);
  } catch {
    // the last line of a Python traceback is the exception with the server's reply
    const last = r.stderr.trim().split("\n").at(-1) ?? "";
    throw new Error(`ftplib download of ${path}: exit ${r.code}: ${last}`);
  }
  if (out.bytes !== LAB_BYTES) {
    throw new Error(`ftplib download of ${path}: ${out.bytes} bytes, ${out.done}`);
  }
  return {
    start: out.start * 1000,
    end: out.end * 1000,
    host: parse227(out.pasv).host,
    start150: out.retr,
    done: out.done,
    lag: (out.end - out.eof) * 1000,
  };
}

/** Complete downloads the master counted, by data path (direct, sibling, relayed). */
async function downloadRoutes(site: LabSite): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const s of await site.metrics()) {
    if (
      s.name === "drftpd_transfers_total" && s.labels.direction === "download" &&
      s.labels.result === "complete" && s.labels.path !== undefined
    ) out.set(s.labels.path, s.value);
  }
  return out;
}

/** `after - before` per key, keys with a change only. */
function countDelta(before: Map<string, number>, after: Map<string, number>) {
  const out = new Map<string, number>();
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d !== 0) out.set(k, d);
  }
  return out;
}

/** Routes of several rounds added up: "direct 12, sibling 0". */
function routesText(rounds: readonly Map<string, number>[]): string {
  const sum = new Map<string, number>();
  for (const r of rounds) for (const [k, v] of r) sum.set(k, (sum.get(k) ?? 0) + v);
  return ["direct", "sibling", "relayed"].map((k) => `${k} ${sum.get(k) ?? 0}`).join(", ");
}

/** Like Promise.all, but a rejection is thrown only once every promise has settled. */
async function allSettled<T>(promises: readonly Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((s) => s.status === "rejected");
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}

/** The rounds of one ftplib variant: figures, routes per round, and the first failure. */
interface NoPretRuns {
  results: LabResult[];
  routes: Map<string, number>[];
  /** Per round: the slave each client's 227 named ("s2,s1"). */
  chosen: string[];
  failure: string | null;
}

/** Issue 12's lab check: stock ftplib without PRET, N = 1, 2, 4 slaves, with and without SIZE. */
async function benchLabNoPret(src: string): Promise<void> {
  await inLab(Math.max(...LAB_NOPRET_NS), async (plan, dir) => {
    notes.push(
      `lab-nopret: ${LAB_NOTE} ${fmt(LAB_BYTES / MiB, 0)} MiB per download, ${LAB_ROUNDS} ` +
        `round(s) alternating the two clients: Python ftplib without PRET ` +
        `(trust_server_pasv_ipv4_address = True), client i downloading the file only slave i ` +
        `holds, once sending SIZE before TYPE I, PASV, RETR (as wget and ncftp do) and once not. ` +
        `pasv_without_pret is left at the code's default. "Routes" are the master's ` +
        `drftpd_transfers_total{direction="download",result="complete"} counts by path over ` +
        `those rounds (its /metrics read over the master namespace's loopback, not its veth); ` +
        `"227" lists, per round, the slave each client's PASV answer named (client i wants the ` +
        `file of s<i>). Without SIZE the master cannot know the file at PASV time; a RETR on a ` +
        `slave that does not hold the file is streamed to it by a holder (sibling), which takes ` +
        `two shaped slave uplinks (holder → chosen slave → client): when every slave of the lab ` +
        `serves (N = 4), all-sibling rounds are capped near half of N×R, so that row has no ` +
        `target and reports the share of sibling transfers.`,
    );
    const site = await startLabSite(plan, dir, src, { place: true });
    for (const n of LAB_NOPRET_NS) {
      const res = new Map<boolean, NoPretRuns>([
        [true, { results: [], routes: [], chosen: [], failure: null }],
        [false, { results: [], routes: [], chosen: [], failure: null }],
      ]);
      for (let r = 0; r < LAB_ROUNDS; r++) {
        for (const size of r % 2 === 0 ? [true, false] : [false, true]) {
          const runs = res.get(size)!;
          // a client that cannot download at all fails every round alike: its row says why
          if (runs.failure !== null) continue;
          const what = `lab-nopret N=${n} ${size ? "SIZE+RETR" : "RETR"} round ${r + 1}`;
          log(what);
          const before = await downloadRoutes(site);
          try {
            const { value: spans, bytes } = await masterBytesDuring(
              plan,
              () =>
                allSettled(
                  plan.slaves.slice(0, n).map((s) =>
                    labFtplib(plan, site, `/f-${s.name}.bin`, size)
                  ),
                ),
            );
            logSpans(what, site, spans);
            log(
              `${what}: last byte to 226 ${spans.map((s) => fmt(s.lag, 0)).join("/")} ms; ` +
                spans.map((s) => `${s.start150} → ${s.done}`).join(" | "),
            );
            runs.results.push(labResult(spans, LAB_BYTES, bytes));
            runs.chosen.push(spans.map((s) => site.slaveOf(s.host)).join(","));
          } catch (e) {
            runs.failure = e instanceof Error ? e.message : String(e);
            log(`${what} failed: ${runs.failure}`);
          }
          runs.routes.push(countDelta(before, await downloadRoutes(site)));
        }
      }
      const cap = `${n}×${LAB_RATE} Mbit/s`;
      for (const size of [true, false]) {
        const { results, routes, chosen, failure } = res.get(size)!;
        const client = size ? "ftplib no PRET, SIZE then RETR" : "ftplib no PRET, RETR only";
        const total = routes.reduce((s, r) => s + [...r.values()].reduce((a, b) => a + b, 0), 0);
        const sibling = routes.reduce((s, r) => s + (r.get("sibling") ?? 0), 0);
        if (failure !== null) {
          row({
            section: "lab-nopret",
            measure: `N=${n} ${client}: aggregate / (${cap})`,
            drftpd: `failed: ${failure.replaceAll("|", "\\|")}`,
            peer: `routes: ${routesText(routes)}`,
            target: size ? "≥ 0.95" : "downloads work",
            met: met(false),
          });
          continue;
        }
        row({
          section: "lab-nopret",
          measure: `N=${n} ${client}: aggregate / (${cap})`,
          drftpd: shownLab(results),
          peer: `routes: ${routesText(routes)}` +
            (size ? "" : `; sibling share ${fmt(sibling / Math.max(total, 1))}`) +
            `; 227: ${chosen.join(" / ")}`,
          target: size ? "≥ 0.95" : "none (sibling share)",
          met: size ? met(medLab(results, "fraction") >= 0.95) : "",
        });
        // the worst round decides: one relayed transfer is what this row is about
        const worst = Math.max(...results.map((x) => x.masterShare));
        row({
          section: "lab-nopret",
          measure: `N=${n} ${client}: master interface bytes / payload, median (worst round)`,
          drftpd: `${fmt(medLab(results, "masterShare"), 4)} (${fmt(worst, 4)})`,
          target: "< 0.005 in every round",
          met: met(worst < 0.005),
        });
      }
    }
  });
}

/** Replication counters of the master: complete copies, and files queued or being copied. */
async function replicationState(site: LabSite) {
  let copied = NaN;
  let busy = NaN;
  for (const s of await site.metrics()) {
    if (s.name === "drftpd_replication_copies_total" && s.labels.result === "complete") {
      copied = s.value;
    }
    if (s.name === "drftpd_replication_queue" || s.name === "drftpd_replication_running") {
      busy = (Number.isNaN(busy) ? 0 : busy) + s.value;
    }
  }
  return { copied, busy };
}

/** Slaves whose root holds `path` (a virtual path) at `size` bytes. */
async function labHolders(plan: LabPlan, site: LabSite, path: string, size: number) {
  const out: string[] = [];
  for (const s of plan.slaves) {
    const st = await Deno.stat(`${site.root(s.name)}${path}`).catch(() => null);
    if (st?.size === size) out.push(s.name);
  }
  return out;
}

/**
 * Issue 15's lab check, on two slaves and `copies = 2` under /archive: each round uploads a file
 * there (curl, PRET), waits for the master to count its copy, then two clients download it at
 * once.
 */
async function benchLabCopies(src: string): Promise<void> {
  await inLab(2, async (plan, dir) => {
    notes.push(
      `lab-copies: ${LAB_NOTE} Two slaves, [[replication]] path = "/archive/**" copies = 2. ` +
        `Each of ${LAB_ROUNDS} round(s) uploads a new ${fmt(LAB_BYTES / MiB, 0)} MiB file ` +
        `under /archive (curl --ftp-pret; the bytes go client → slave) and waits until both ` +
        `slave roots hold it at full size and the master's /metrics count the copy with an ` +
        `empty replication queue. "Master bytes while replicating" = the master veth's rx+tx ` +
        `from before the upload until then (the upload's control session included, so an upper ` +
        `bound) over the bytes copied. Then two curl --ftp-pret clients download that file at ` +
        `once; "227" says which holder each was sent to.`,
    );
    const site = await startLabSite(plan, dir, src, {
      place: false,
      masterTail: '[[replication]]\npath = "/archive/**"\ncopies = 2\n',
    });
    const copyShares: number[] = [];
    const copySeconds: number[] = [];
    const downloads: LabResult[] = [];
    const spreads: string[] = [];
    for (let r = 0; r < LAB_ROUNDS; r++) {
      const path = `/archive/c-${r}.bin`;
      log(`lab-copies round ${r + 1}: upload ${path}, wait for its second copy`);
      const copied = await masterBytesDuring(plan, async () => {
        const up = await exec(
          "ip",
          inNs(plan.client.ns, [
            "curl",
            ...CURL_COMMON,
            "--ftp-pret",
            "--ftp-create-dirs",
            "--max-time",
            "300",
            "-T",
            src,
            site.url(path),
          ]).slice(1),
          { timeoutMs: 330_000 },
        );
        if (up.code !== 0) throw new Error(`lab upload of ${path}: exit ${up.code} ${up.stderr}`);
        const t0 = performance.now();
        const until = Date.now() + 300_000;
        for (;;) {
          const holders = await labHolders(plan, site, path, LAB_BYTES);
          const state = await replicationState(site);
          if (holders.length === 2 && state.copied >= r + 1 && state.busy === 0) break;
          if (Date.now() > until) {
            throw new Error(
              `${path}: no second copy after 300 s (on ${holders}, copies ${state.copied})`,
            );
          }
          await sleep(100);
        }
        return (performance.now() - t0) / 1000;
      });
      copyShares.push(copied.bytes / LAB_BYTES);
      copySeconds.push(copied.value);
      log(
        `lab-copies round ${r + 1}: copied in ${fmt(copied.value, 1)} s after the upload; ` +
          `master ${copied.bytes} bytes`,
      );
      const { value: spans, bytes } = await masterBytesDuring(
        plan,
        () => Promise.all([0, 1].map(() => labCurl(plan, site, path, true))),
      );
      logSpans(`lab-copies round ${r + 1}: two downloads`, site, spans);
      downloads.push(labResult(spans, LAB_BYTES, bytes));
      spreads.push(spans.map((s) => site.slaveOf(s.host)).sort().join("+"));
    }
    const spread = spreads.filter((s) => s === "s1+s2").length;
    row({
      section: "lab-copies",
      measure: `2 clients at once, one 2-copy file, 2 slaves: aggregate / (2×${LAB_RATE} Mbit/s)`,
      drftpd: shownLab(downloads),
      peer: `holders per round: ${spreads.join(", ")}`,
      target: "≥ 0.95, one client per holder",
      met: met(medLab(downloads, "fraction") >= 0.95 && spread === spreads.length),
    });
    row({
      section: "lab-copies",
      measure: "master interface bytes while replicating / bytes copied, median (worst round)",
      drftpd: `${fmt(median(copyShares), 4)} (${fmt(Math.max(...copyShares), 4)})`,
      peer: `copy done ${fmt(median(copySeconds), 1)} s after the upload's 226 ` +
        `(${mibps(LAB_BYTES / median(copySeconds))} counting the wait before it starts)`,
      target: "< 0.005 in every round",
      met: met(Math.max(...copyShares) < 0.005),
    });
  });
}

// ------------------------------------------------------------------------------ main

function table(): string {
  const head = [
    "Section",
    "Measure",
    "drftpd",
    "vsftpd / peer",
    "Ratio",
    "Target",
    "Met",
    "Measured",
  ];
  const lines = [
    `| ${head.join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
    ...rows.map((r) =>
      `| ${
        [r.section, r.measure, r.drftpd, r.peer, r.ratio, r.target, r.met, r.when].join(" | ")
      } |`
    ),
  ];
  return lines.join("\n");
}

/** A self-signed certificate for vsftpd's TLS (openssl CLI). */
async function benchCert(dir: string): Promise<{ certFile: string; keyFile: string }> {
  const certFile = `${dir}/vsftpd-cert.pem`;
  const keyFile = `${dir}/vsftpd-key.pem`;
  // deno-fmt-ignore
  await exec("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-subj", "/CN=127.0.0.1", "-days", "2", "-keyout", keyFile, "-out", certFile,
  ], { check: true });
  return { certFile, keyFile };
}

async function main(): Promise<void> {
  // The engine each drftpd site uses is its config's: an override would make them all the same.
  Deno.env.delete(DATA_ENGINE_ENV);
  const info = await machineInfo();
  const started = new Date();
  RUN_WHEN = `${started.toISOString().slice(0, 10)}, kernel ${info.kernel.split(" ")[0]}`;
  const root = isRoot();
  const hasVsftpd = (await findVsftpd()) !== null && root;
  if (!hasVsftpd) notes.push("vsftpd comparison skipped (needs vsftpd installed and root)");
  const work = await Deno.makeTempDir({ prefix: "drftpd-bench-" });
  const src = `${work}/src.bin`;
  try {
    const bigFile = ONLY.has("single") || ONLY.has("control");
    if (bigFile) {
      log(`writing a ${FILE_BYTES / MiB} MiB source file`);
      await makeBigFile(src, FILE_BYTES);
    }
    const labSrc = bigFile && FILE_BYTES === LAB_BYTES ? src : `${work}/lab.bin`;
    if (LAB_ANY && labSrc !== src) await makeBigFile(labSrc, LAB_BYTES);
    if (ONLY.has("single") || ONLY.has("control")) {
      log("starting drftpd (master + 1 slave, native engine) and vsftpd (TLS optional)");
      await using site = await drftpdSite(src);
      let vs: Vsftpd | null = null;
      try {
        if (hasVsftpd) {
          vs = await startVsftpd(`${work}/vsftpd`, { tls: await benchCert(work) });
          await fillTree(vs.pub, src);
        }
        const dr = siteTarget(site);
        const vt = vs ? vsftpdTarget(vs) : null;
        if (ONLY.has("single")) {
          log("starting a second drftpd whose slave uses the zero_copy engine");
          await using zc = await drftpdSite(src, "zero_copy");
          await benchSingle([dr, siteTarget(zc, "zero_copy")], vt, src);
        }
        if (ONLY.has("control")) await benchControl(dr, vt);
      } finally {
        if (vs) await vs[Symbol.asyncDispose]();
      }
    }
    if (LAB_ANY) {
      if (!root) notes.push("network lab skipped (needs root)");
      else {
        const parts = [
          ["lab-pret", benchLab],
          ["lab-nopret", benchLabNoPret],
          ["lab-copies", benchLabCopies],
        ] as const;
        for (const [name, fn] of parts) {
          if (!ONLY.has(name)) continue;
          await fn(labSrc).catch((e) => {
            notes.push(`network lab ${name} failed: ${e instanceof Error ? e.message : e}`);
            log(`${name} failed: ${e}`);
          });
        }
      }
    }
    if (ONLY.has("remerge")) await benchRemerge();
  } finally {
    await killAll();
    // only a run that built the lab removes it: another bench run may be using it
    if (root && LAB_ANY) await cleanupLab().catch(() => {});
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }

  const secs = (Date.now() - started.getTime()) / 1000;
  const header = [
    `## ${started.toISOString().slice(0, 16).replace("T", " ")} UTC — ${
      QUICK ? "quick" : FILE_BYTES < GiB ? `small (${FILE_BYTES / MiB} MiB)` : "full"
    } run`,
    "",
    `Machine: ${info.cores} cores, kernel ${info.kernel}, Deno ${info.deno}. ` +
    `Command: \`deno task bench ${
      args.join(" ")
    }\`. Rounds: ${ROUNDS} (lab: ${LAB_ROUNDS}), alternating (rotating) the order, ` +
    `median shown. Run took ${fmt(secs, 0)} s.`,
    "",
  ].join("\n");
  const body = `${header}${table()}\n\n${notes.map((n) => `- ${n}`).join("\n")}\n`;
  console.log(body);
  await Deno.mkdir(new URL(".", `file://${OUT}`).pathname, { recursive: true });
  let previous = "";
  try {
    previous = await Deno.readTextFile(OUT);
  } catch {
    // first run
  }
  const title = "# drftpd bench results\n\nNewest run first. See scripts/bench.ts for what each " +
    "figure measures.\n\n";
  await Deno.writeTextFile(OUT, `${title}${body}\n${previous.replace(title, "")}`);
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(sig, () => {
    log(`${sig}: killing children and removing the lab`);
    killAll().then(killSiteProcesses).then(() => (isRoot() && LAB_ANY ? cleanupLab() : []))
      .finally(() => Deno.exit(130));
  });
}

try {
  await main();
} catch (e) {
  console.error(e);
  await killAll();
  if (isRoot() && LAB_ANY) await cleanupLab().catch(() => {});
  Deno.exit(1);
}
Deno.exit(0);
