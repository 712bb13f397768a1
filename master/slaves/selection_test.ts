import assert from "node:assert/strict";
import type { SelectionConfig } from "../../shared/config_types.ts";
import {
  type Candidate,
  chooseSlave,
  chooseSlaves,
  formatRanking,
  NoSlaveError,
  rankSlaves,
  selectionPolicy,
  type SlaveWanted,
} from "./selection.ts";

const GB = 1024 ** 3;
const MIN_FREE = 64 * 1024 * 1024;
const c = (name: string, o: Partial<Candidate> = {}): Candidate => ({
  name,
  available: true,
  activeTransfers: 0,
  recentPicks: 0,
  freeBytes: 10 * GB,
  throughput: 0,
  lastPicked: 0,
  ...o,
});
const config = (o: Partial<SelectionConfig> = {}): SelectionConfig => ({
  min_free: MIN_FREE,
  max_transfers: 0,
  weight_free: 1,
  weight_transfers: 3,
  weight_throughput: 1,
  rules: [],
  ...o,
});
const up = (path = "/f", holders: string[] = []): SlaveWanted => ({
  kind: "upload",
  path,
  holders,
});
const down = (holders: string[], path = "/f"): SlaveWanted => ({ kind: "download", path, holders });

const HD_ONLY_S3 = config({
  rules: [
    { path: "/hd/**", prefer: [], only: ["s3"], exclude: [] },
    { path: "/fast/**", prefer: ["s2"], only: [], exclude: [] },
    { path: "/**", prefer: [], only: [], exclude: ["s1"] },
  ],
});

/** Each case: slaves, what is wanted, the config, and the slave chosen (or the error text). */
const CASES: {
  name: string;
  slaves: Candidate[];
  want: SlaveWanted;
  config?: SelectionConfig;
  pick: string | RegExp;
}[] = [
  {
    name: "upload: fewer active transfers first",
    slaves: [c("a", { activeTransfers: 2 }), c("b", { activeTransfers: 1, freeBytes: 1 * GB })],
    want: up(),
    pick: "b",
  },
  {
    name: "upload: clearly more free space",
    slaves: [c("a", { freeBytes: 5 * GB }), c("b")],
    want: up(),
    pick: "b",
  },
  {
    name: "upload: free space within 5% ties, the least recently picked wins",
    slaves: [c("a", { lastPicked: 5 }), c("b", { lastPicked: 3, freeBytes: 9.9 * GB })],
    want: up(),
    pick: "b",
  },
  {
    name: "upload: a slave that moved bytes recently loses a tie on free space",
    slaves: [c("a", { throughput: 5_000_000 }), c("b", { throughput: 1_000_000, lastPicked: 9 })],
    want: up(),
    pick: "b",
  },
  {
    name: "upload: weights change the order (free space over transfers)",
    slaves: [c("a", { activeTransfers: 1 }), c("b", { freeBytes: 2 * GB })],
    want: up(),
    config: config({ weight_free: 10, weight_transfers: 1 }),
    pick: "a",
  },
  {
    name: "upload: below min_free never",
    slaves: [c("a", { freeBytes: MIN_FREE - 1 }), c("b", { activeTransfers: 9 })],
    want: up(),
    pick: "b",
  },
  {
    name: "upload: exactly min_free is enough",
    slaves: [c("a", { freeBytes: MIN_FREE })],
    want: up(),
    pick: "a",
  },
  {
    name: "upload: max_transfers reached excludes",
    slaves: [c("a", { activeTransfers: 2 }), c("b", { activeTransfers: 3 })],
    want: up(),
    config: config({ max_transfers: 3 }),
    pick: "a",
  },
  {
    name: "upload: all at max_transfers",
    slaves: [c("a", { activeTransfers: 3 })],
    want: up(),
    config: config({ max_transfers: 3 }),
    pick: /^No slave can take \/f: a max_transfers reached \(3\)$/,
  },
  {
    name: "upload: none online",
    slaves: [c("a", { available: false })],
    want: up(),
    pick: /^No slave is online to take uploads$/,
  },
  {
    name: "upload: rule only s3, though s3 is the busiest",
    slaves: [c("s1"), c("s2"), c("s3", { activeTransfers: 5 })],
    want: up("/hd/x/y.bin"),
    config: HD_ONLY_S3,
    pick: "s3",
  },
  {
    name: "upload: rule only s3 with s3 offline names the rule",
    slaves: [c("s1"), c("s3", { available: false })],
    want: up("/hd/y.bin"),
    config: HD_ONLY_S3,
    pick: /^No slave can take \/hd\/y\.bin: s1 excluded by rule 1 \(\/hd\/\*\*\); s3 offline$/,
  },
  {
    name: "upload: rule prefer s2 puts it first while it can take the file",
    slaves: [c("s1"), c("s2", { activeTransfers: 4 }), c("s3")],
    want: up("/fast/a"),
    config: HD_ONLY_S3,
    pick: "s2",
  },
  {
    name: "upload: a preferred slave below min_free is skipped",
    slaves: [c("s2", { freeBytes: 0 }), c("s3", { activeTransfers: 4 })],
    want: up("/fast/a"),
    config: HD_ONLY_S3,
    pick: "s3",
  },
  {
    name: "upload: first matching rule wins (exclude s1 elsewhere)",
    slaves: [c("s1"), c("s2", { activeTransfers: 1 })],
    want: up("/other/a"),
    config: HD_ONLY_S3,
    pick: "s2",
  },
  {
    name: "overwrite: a holder first",
    slaves: [c("a"), c("b", { activeTransfers: 2 })],
    want: up("/f", ["b"]),
    pick: "b",
  },
  {
    name: "overwrite: the holder offline, a new slave",
    slaves: [c("a"), c("b", { available: false })],
    want: up("/f", ["b"]),
    pick: "a",
  },
  {
    name: "overwrite: a holder the rule excludes is not used",
    slaves: [c("s1"), c("s3", { activeTransfers: 2 })],
    want: up("/hd/f", ["s1"]),
    config: HD_ONLY_S3,
    pick: "s3",
  },
  {
    name: "resume: a holder, rules and min_free do not apply",
    slaves: [c("s1", { freeBytes: 0 }), c("s3")],
    want: { ...up("/hd/f", ["s1"]), resuming: true },
    config: HD_ONLY_S3,
    pick: "s1",
  },
  {
    name: "resume: the holder offline",
    slaves: [c("a"), c("b", { available: false })],
    want: { ...up("/f", ["b"]), resuming: true },
    pick: /^\/f is not available: its slave \(b\) is offline$/,
  },
  {
    name: "download: the least busy holder",
    slaves: [c("a"), c("b", { available: false }), c("c", { activeTransfers: 3 }), c("d")],
    want: down(["b", "c", "d"]),
    pick: "d",
  },
  {
    name: "download: equal transfers, the one that moved less recently",
    slaves: [c("a", { throughput: 9_000_000 }), c("b", { throughput: 1_000, lastPicked: 9 })],
    want: down(["a", "b"]),
    pick: "b",
  },
  {
    name: "download: free space does not matter, rules do not apply",
    slaves: [c("s1", { freeBytes: 0 }), c("s3", { activeTransfers: 1 })],
    want: down(["s1", "s3"], "/hd/f"),
    config: HD_ONLY_S3,
    pick: "s1",
  },
  {
    name: "download: a holder just picked counts as busier (its transfer may not run yet)",
    slaves: [c("a", { recentPicks: 1 }), c("b", { throughput: 9_000_000, lastPicked: 9 })],
    want: down(["a", "b"]),
    pick: "b",
  },
  {
    name: "upload: picks do not count toward max_transfers",
    slaves: [c("a", { recentPicks: 3 })],
    want: up(),
    config: config({ max_transfers: 1 }),
    pick: "a",
  },
  {
    name: "download: no holder",
    slaves: [c("a")],
    want: down([]),
    pick: /^\/f is not available: no slave holds it$/,
  },
  {
    name: "download: holders offline",
    slaves: [c("a", { available: false })],
    want: down(["a", "b"]),
    pick: /^\/f is not available: its slaves \(a, b\) are offline$/,
  },
  {
    name: "upload: no slave available, whatever the reason",
    slaves: [c("a", { available: false, unavailable: "not responding" })],
    want: up(),
    pick: /^No slave is online to take uploads$/,
  },
  {
    name: "download: holders not responding count as offline",
    slaves: [c("a", { available: false, unavailable: "not responding" })],
    want: down(["a"]),
    pick: /^\/f is not available: its slave \(a\) is offline$/,
  },
  {
    name: "download: holders busy",
    slaves: [c("a", { activeTransfers: 1 }), c("b", { available: false })],
    want: down(["a", "b"]),
    config: config({ max_transfers: 1 }),
    pick: /^\/f is not available now: a max_transfers reached \(1\); b offline$/,
  },
  {
    name: "copy target: never a holder, rules apply",
    slaves: [c("s1"), c("s2", { activeTransfers: 3 }), c("s3")],
    want: { kind: "copy", path: "/x/f", holders: ["s3"] },
    config: HD_ONLY_S3,
    pick: "s2",
  },
  {
    name: "copy target: none left",
    slaves: [c("s1"), c("s3")],
    want: { kind: "copy", path: "/hd/f", holders: ["s3"] },
    config: HD_ONLY_S3,
    pick: /^No slave can take \/hd\/f: s1 excluded by rule 1 \(\/hd\/\*\*\); s3 already holds it$/,
  },
];

for (const t of CASES) {
  Deno.test(`chooseSlave: ${t.name}`, () => {
    const policy = selectionPolicy(t.config ?? config());
    if (typeof t.pick === "string") {
      assert.equal(chooseSlave(t.slaves, t.want, policy).name, t.pick);
    } else {
      const pick = t.pick;
      assert.throws(
        () => chooseSlave(t.slaves, t.want, policy),
        (e) => e instanceof NoSlaveError && pick.test(e.message),
      );
    }
  });
}

/** `x` (a number or an object of numbers) to 3 decimals. */
function round<T>(x: T): T {
  if (typeof x === "number") return Number(x.toFixed(3)) as T;
  return Object.fromEntries(Object.entries(x as object).map(([k, v]) => [k, round(v)])) as T;
}

Deno.test("rankSlaves shows each term, the score and why a slave is excluded", () => {
  const policy = selectionPolicy({ ...HD_ONLY_S3, max_transfers: 2 });
  const r = rankSlaves(
    [
      c("s1"),
      c("s3", { activeTransfers: 1, freeBytes: 5 * GB, throughput: 200 }),
      c("s4", { throughput: 800 }),
      c("s5", { activeTransfers: 2 }),
      c("s6", { available: false, unavailable: "leaving" }),
      c("s7", { freeBytes: 1 }),
    ],
    up("/x/a"),
    policy,
  );
  assert.equal(r.rule?.index, 3);
  assert.deepEqual(
    r.slaves.map((a) => [a.slave.name, a.excluded, round(a.terms), round(a.score)]),
    [
      ["s4", null, { free: 1, transfers: 0, throughput: 1 }, 0],
      ["s3", null, { free: 0.526, transfers: 1, throughput: 0.25 }, -2.724],
      ["s1", "excluded by rule 3 (/**)", { free: 1, transfers: 0, throughput: 0 }, 0],
      ["s5", "max_transfers reached (2)", { free: 1, transfers: 2, throughput: 0 }, 0],
      ["s6", "leaving", { free: 1, transfers: 0, throughput: 0 }, 0],
      ["s7", `below min_free (1 < ${MIN_FREE} bytes free)`, {
        free: 0,
        transfers: 0,
        throughput: 0,
      }, 0],
    ],
  );
});

Deno.test("chooseSlaves: the best distinct targets, fewer when fewer may take the file", () => {
  const policy = selectionPolicy(HD_ONLY_S3);
  const slaves = [c("s1"), c("s2", { activeTransfers: 1 }), c("s3"), c("s4", { available: false })];
  const want: SlaveWanted = { kind: "copy", path: "/x/f", holders: [] };
  assert.deepEqual(chooseSlaves(slaves, want, { policy, count: 2 }).map((s) => s.name), [
    "s3",
    "s2",
  ]);
  assert.deepEqual(chooseSlaves(slaves, want, { policy, count: 5 }).map((s) => s.name), [
    "s3",
    "s2",
  ]);
  assert.deepEqual(chooseSlaves(slaves, { ...want, path: "/hd/f" }, { policy, count: 2 }), [
    slaves[2],
  ]);
});

Deno.test("formatRanking: a heading, then one line per slave with its terms or why it is out", () => {
  const policy = selectionPolicy(HD_ONLY_S3);
  const want = up("/hd/a.bin");
  const slaves = [
    c("s1"),
    c("s2", { available: false }),
    c("s3", { freeBytes: 1000 * GB, throughput: 4096, activeTransfers: 1 }),
  ];
  assert.deepEqual(formatRanking(rankSlaves(slaves, want, policy), { want, policy }), [
    "Slaves for an upload of /hd/a.bin: rule 1 (/hd/**: only s3); " +
    "score = 1 x free - 3 x transfers - 1 x throughput",
    "s3 score=-3.000 (chosen) free=1.000 (1073741824000 bytes) transfers=1 " +
    "throughput=1.000 (4096 bytes/s)",
    "s1 excluded: excluded by rule 1 (/hd/**)",
    "s2 excluded: offline",
  ]);
  const d = down(["s1", "s3"]);
  assert.deepEqual(formatRanking(rankSlaves(slaves, d, policy), { want: d, policy }), [
    "Slaves for a download of /f: no path rule; score = 1 x free - 3 x transfers - 1 x throughput",
    "s1 score=0.000 (chosen) free=0.000 (10737418240 bytes) transfers=0 throughput=0.000 (0 bytes/s)",
    "s3 score=-4.000 free=0.000 (1073741824000 bytes) transfers=1 throughput=1.000 (4096 bytes/s)",
    "s2 excluded: offline",
  ]);
});
