/**
 * Network lab: a master, N slaves and a client, each in its own network namespace, joined by a
 * bridge that lives in a namespace of its own (so the host's network is never touched). Every
 * address is from a private range (default 10.77.0.0/24) and exists only inside these namespaces.
 * Each slave's link is shaped with tc (tbf) to R Mbit/s in both directions.
 *
 * Needs root and iproute2 (`ip`, `tc`). Used by `deno task bench` when run as root; by hand:
 *
 * ```sh
 * deno run -A scripts/lab.ts plan --slaves 4 --rate 100   # print the plan (no root needed)
 * deno run -A scripts/lab.ts up --slaves 4 --rate 100     # create it (root)
 * ip netns exec dftl-client ping -c1 10.77.0.11          # use it
 * deno run -A scripts/lab.ts down                         # remove every dftl-* namespace
 * ```
 *
 * Layout (prefix "dftl", subnet "10.77.0"):
 *
 * | namespace     | interface | address        | peer in dftl-br | shaped |
 * | ------------- | --------- | -------------- | --------------- | ------ |
 * | dftl-master   | eth0      | 10.77.0.1/24   | v-master        | no     |
 * | dftl-client   | eth0      | 10.77.0.2/24   | v-client        | no     |
 * | dftl-s1 … sN  | eth0      | 10.77.0.11+i   | v-s1 … v-sN     | R Mbit |
 *
 * @module
 */

/** What to build. */
export interface LabOptions {
  /** Number of slaves, 1-100. */
  slaves: number;
  /** Rate of each slave's link in Mbit/s (both directions). Default 100. */
  rateMbit?: number;
  /** First three octets of the /24, e.g. "10.77.0". Must be a private (RFC 1918) range. */
  subnet?: string;
  /** Prefix of every namespace name (≤ 8 characters). Default "dftl". */
  prefix?: string;
}

/** One endpoint of the lab. */
export interface LabNode {
  /** "master", "client", "s1"… */
  name: string;
  role: "master" | "slave" | "client";
  /** Network namespace holding it. */
  ns: string;
  /** Its interface inside `ns` (always "eth0"). */
  ifname: string;
  /** The other end of its veth pair, inside the bridge namespace. */
  peer: string;
  /** IPv4 address (without prefix length). */
  address: string;
  /** Shaping rate in Mbit/s, or null when unshaped. */
  rateMbit: number | null;
}

/** The whole plan: names, addresses and the exact commands to build and remove it. */
export interface LabPlan {
  prefix: string;
  subnet: string;
  /** Namespace holding the bridge. */
  bridgeNs: string;
  bridge: string;
  master: LabNode;
  client: LabNode;
  slaves: LabNode[];
  /** argv lists run in order to build the lab (each starts with "ip" or "tc"). */
  setup: string[][];
  /** argv lists that remove it (deleting a namespace deletes its veth ends too). */
  teardown: string[][];
}

/** tbf shaping of one interface: rate with a burst of ~ 1 ms at that rate (at least 32 KiB). */
export function tbfArgs(ns: string, dev: string, rateMbit: number): string[] {
  const burstBytes = Math.max(32 * 1024, Math.ceil((rateMbit * 1e6) / 8 / 1000));
  return [
    "tc",
    "-n",
    ns,
    "qdisc",
    "replace",
    "dev",
    dev,
    "root",
    "tbf",
    "rate",
    `${rateMbit}mbit`,
    "burst",
    `${burstBytes}`,
    "latency",
    "50ms",
  ];
}

function isPrivateSubnet(subnet: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(subnet);
  if (!m) return false;
  const [a, b, c] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (a > 255 || b > 255 || c > 255) return false;
  return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168);
}

/** Computes the lab's names, addresses and commands. Pure: runs nothing. */
export function labPlan(options: LabOptions): LabPlan {
  const n = options.slaves;
  const rate = options.rateMbit ?? 100;
  const subnet = options.subnet ?? "10.77.0";
  const prefix = options.prefix ?? "dftl";
  if (!Number.isInteger(n) || n < 1 || n > 100) throw new RangeError(`slaves must be 1-100: ${n}`);
  if (!(rate > 0 && rate <= 100_000)) throw new RangeError(`rate must be 0-100000 Mbit/s: ${rate}`);
  if (!isPrivateSubnet(subnet)) throw new RangeError(`subnet must be a private /24: ${subnet}`);
  if (!/^[a-z][a-z0-9]{0,7}$/.test(prefix)) throw new RangeError(`bad prefix: ${prefix}`);
  const bridgeNs = `${prefix}-br`;
  const bridge = "br0";
  const node = (
    name: string,
    role: LabNode["role"],
    host: number,
    rateMbit: number | null,
  ): LabNode => ({
    name,
    role,
    ns: `${prefix}-${name}`,
    ifname: "eth0",
    peer: `v-${name}`,
    address: `${subnet}.${host}`,
    rateMbit,
  });
  const master = node("master", "master", 1, null);
  const client = node("client", "client", 2, null);
  const slaves = Array.from({ length: n }, (_, i) => node(`s${i + 1}`, "slave", 11 + i, rate));
  const all = [master, client, ...slaves];

  const setup: string[][] = [
    ["ip", "netns", "add", bridgeNs],
    ["ip", "-n", bridgeNs, "link", "set", "lo", "up"],
    ["ip", "-n", bridgeNs, "link", "add", bridge, "type", "bridge"],
    ["ip", "-n", bridgeNs, "link", "set", bridge, "up"],
  ];
  for (const x of all) {
    setup.push(
      ["ip", "netns", "add", x.ns],
      ["ip", "-n", x.ns, "link", "set", "lo", "up"],
      [
        "ip",
        "-n",
        x.ns,
        "link",
        "add",
        x.ifname,
        "type",
        "veth",
        "peer",
        "name",
        x.peer,
        "netns",
        bridgeNs,
      ],
      ["ip", "-n", x.ns, "addr", "add", `${x.address}/24`, "dev", x.ifname],
      ["ip", "-n", x.ns, "link", "set", x.ifname, "up"],
      ["ip", "-n", bridgeNs, "link", "set", x.peer, "master", bridge],
      ["ip", "-n", bridgeNs, "link", "set", x.peer, "up"],
    );
    if (x.rateMbit !== null) {
      // egress of the slave (its downloads) and egress of the bridge port towards it (uploads)
      setup.push(tbfArgs(x.ns, x.ifname, x.rateMbit), tbfArgs(bridgeNs, x.peer, x.rateMbit));
    }
  }
  const teardown = [...all.map((x) => x.ns), bridgeNs].map((ns) => ["ip", "netns", "del", ns]);
  return { prefix, subnet, bridgeNs, bridge, master, client, slaves, setup, teardown };
}

// ------------------------------------------------------------------------------ running it

async function run(argv: string[], check = true): Promise<{ code: number; out: string }> {
  const out = await new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (check && out.code !== 0) throw new Error(`${argv.join(" ")} failed (${out.code}): ${text}`);
  return { code: out.code, out: text };
}

/** True when this process runs as root (the lab needs it). */
export function isRoot(): boolean {
  try {
    return Deno.uid() === 0;
  } catch {
    return false;
  }
}

/** Deletes every namespace whose name starts with `${prefix}-` (leftovers of a crashed run). */
export async function cleanupLab(prefix = "dftl"): Promise<string[]> {
  const { out } = await run(["ip", "netns", "list"], false);
  const names = out.split("\n").map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((name) => name.startsWith(`${prefix}-`));
  for (const ns of names) await run(["ip", "netns", "del", ns], false);
  return names;
}

/** Builds the lab (after removing leftovers). Removes what it built when a step fails. */
export async function labUp(plan: LabPlan): Promise<void> {
  await cleanupLab(plan.prefix);
  try {
    for (const argv of plan.setup) await run(argv);
  } catch (e) {
    await labDown(plan);
    throw e;
  }
}

/** Removes the lab (best effort, every namespace of its prefix). */
export async function labDown(plan: LabPlan): Promise<void> {
  for (const argv of plan.teardown) await run(argv, false);
  await cleanupLab(plan.prefix);
}

/** Builds the lab, runs `fn`, and always tears the lab down. */
export async function withLab<T>(plan: LabPlan, fn: (plan: LabPlan) => Promise<T>): Promise<T> {
  await labUp(plan);
  try {
    return await fn(plan);
  } finally {
    await labDown(plan);
  }
}

/** Bytes received and sent by `ifname` inside `ns` (its kernel counters). */
export async function ifaceBytes(ns: string, ifname = "eth0"): Promise<{ rx: number; tx: number }> {
  const { out } = await run(["ip", "-n", ns, "-s", "-j", "link", "show", "dev", ifname]);
  const info = JSON.parse(out)[0];
  const stats = info.stats64 ?? info.stats;
  return { rx: Number(stats.rx.bytes), tx: Number(stats.tx.bytes) };
}

/** argv prefix that runs a command inside a namespace. */
export function inNs(ns: string, argv: string[]): string[] {
  return ["ip", "netns", "exec", ns, ...argv];
}

if (import.meta.main) {
  const args = Deno.args;
  const flag = (name: string, def: number) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : def;
  };
  const plan = labPlan({ slaves: flag("slaves", 2), rateMbit: flag("rate", 100) });
  switch (args[0]) {
    case "plan":
      for (const argv of plan.setup) console.log(argv.join(" "));
      break;
    case "up":
      if (!isRoot()) throw new Error("the lab needs root");
      await labUp(plan);
      console.log(
        `lab up: ${
          [plan.master, plan.client, ...plan.slaves].map((n) => `${n.ns}=${n.address}`).join(" ")
        }`,
      );
      break;
    case "down":
      console.log(`removed: ${(await cleanupLab(plan.prefix)).join(" ") || "nothing"}`);
      break;
    default:
      console.error("usage: lab.ts plan|up|down [--slaves N] [--rate MBIT]");
      Deno.exit(2);
  }
}
