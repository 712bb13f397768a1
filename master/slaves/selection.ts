/**
 * Slave selection: the one choice of a slave for every transfer and copy (uploads, downloads,
 * PRET, replication targets and sources, healing, SITE COPY), pure over what the registry knows
 * and `[selection]` of master.toml.
 *
 * **Who may serve.** Each slave that may not gets a reason (SITE SLAVESELECT shows it):
 * - a download, or the source of a copy (`kind: "download"`): a holder of the file that is
 *   online ("offline", "not a holder") and below `max_transfers` ("max_transfers reached");
 * - a new upload (`"upload"`) or the target of a copy (`"copy"`, which also skips the holders:
 *   "already holds it"): an online slave, not excluded by the path rule ("excluded by rule N"),
 *   with at least `min_free` free bytes ("below min_free") and below `max_transfers`;
 * - a resumed upload (APPE, REST before STOR) continues the bytes on disk: it goes to a holder,
 *   as a download does (the path rule and `min_free` do not apply).
 *
 * **Path rules** (`[[selection.rules]]`, the first whose glob matches the virtual path decides)
 * place files: `only` leaves just the slaves listed, `exclude` removes the slaves listed,
 * `prefer` puts the slaves listed first. Downloads ignore them: a file is served from whichever
 * slave holds it.
 *
 * **Order.** Among the slaves that may serve, the preferred come first (the rule's `prefer`;
 * for an upload over an existing file, its holders), then the highest score:
 *
 *     score = weight_free × F − weight_transfers × T − weight_throughput × R
 *
 * - F: free bytes over 95% of the most free bytes among those that may serve, at most 1 (so
 *   disks within 5% of the emptiest tie); uploads and copies only, 0 for downloads;
 * - T: the transfers running on the slave now (client transfers and copies), plus the times it
 *   was picked over the last 2 s (a PASV is answered before its RETR or STOR starts the transfer,
 *   so concurrent clients would all get the same slave otherwise);
 * - R: the bytes/s the slave moved over the last 30 s over the most among those that may serve
 *   (0 when all were idle).
 *
 * Equal scores go to the slave picked least recently, then by name. With the default weights
 * (1, 3, 1) one more running transfer outweighs the other two terms together: fewest active
 * transfers first, then free space and recent throughput.
 *
 * @module
 */
import type { SelectionConfig } from "../../shared/config_types.ts";
import { globRegExp } from "../auth/path_rules.ts";

/** How long a pick counts as a transfer about to start (see T in the module docs), ms. */
export const PICK_WINDOW_MS = 2_000;

/** What selection needs to know about a slave. */
export interface Candidate {
  name: string;
  /** Online, not leaving and answering: may take transfers. */
  available: boolean;
  /** Why it may not when not `available` ("remerging", "not responding"…); default "offline". */
  unavailable?: string;
  /** Transfers running on it now (client transfers and copies). */
  activeTransfers: number;
  /** Times it was picked over the last PICK_WINDOW_MS (transfers that may not have started yet). */
  recentPicks: number;
  freeBytes: number;
  /** Bytes/s moved over the last 30 s. */
  throughput: number;
  /** When it was last picked (any monotonic clock); 0 = never. */
  lastPicked: number;
}

/** What a transfer or copy needs from the slave that will serve it. */
export interface SlaveWanted {
  /** A download or a copy's source; a client's upload; a copy's target. */
  kind: "download" | "upload" | "copy";
  /** The file's virtual path (for the path rules and the error text). */
  path: string;
  /** The slaves the filelist records as holding the file (none for a new file). */
  holders: readonly string[];
  /** An upload that continues the file on disk (APPE, or REST before STOR). */
  resuming?: boolean;
}

/** `[[selection.rules]]` ready to match. */
export interface CompiledRule {
  /** 1-based position in master.toml (for the reasons shown). */
  index: number;
  path: string;
  re: RegExp;
  prefer: ReadonlySet<string>;
  only: ReadonlySet<string>;
  exclude: ReadonlySet<string>;
}

/** `[selection]` ready to apply. */
export interface SelectionPolicy {
  minFree: number;
  /** 0 = unlimited. */
  maxTransfers: number;
  weights: { free: number; transfers: number; throughput: number };
  rules: readonly CompiledRule[];
}

/** Compiles `[selection]` (its path globs) once. */
export function selectionPolicy(config: SelectionConfig): SelectionPolicy {
  return {
    minFree: config.min_free,
    maxTransfers: config.max_transfers,
    weights: {
      free: config.weight_free,
      transfers: config.weight_transfers,
      throughput: config.weight_throughput,
    },
    rules: config.rules.map((r, i) => ({
      index: i + 1,
      path: r.path,
      re: globRegExp(r.path),
      prefer: new Set(r.prefer),
      only: new Set(r.only),
      exclude: new Set(r.exclude),
    })),
  };
}

/** The first `[[selection.rules]]` entry whose glob matches `path`, or null. */
export function ruleFor(policy: SelectionPolicy, path: string): CompiledRule | null {
  return policy.rules.find((r) => r.re.test(path)) ?? null;
}

/** One slave as selection sees it for a transfer. */
export interface Assessment<T extends Candidate> {
  slave: T;
  /** Why it may not serve this transfer; null when it may. */
  excluded: string | null;
  /** In the first tier (the rule's `prefer`, or a holder for an overwrite). */
  preferred: boolean;
  /** The weighted score (0 for an excluded slave); higher is better. */
  score: number;
  /** The score's terms before weighting: F (0–1), T (count), R (0–1); see the module docs. */
  terms: { free: number; transfers: number; throughput: number };
}

/** Every slave assessed for one transfer. */
export interface Ranking<T extends Candidate> {
  /** The path rule that applies (null: none, or a download). */
  rule: CompiledRule | null;
  /** Best first; the excluded ones last, by name. */
  slaves: Assessment<T>[];
}

/** Scores every slave for `want` (see the module docs); the first one that is not excluded wins. */
export function rankSlaves<T extends Candidate>(
  slaves: readonly T[],
  want: SlaveWanted,
  policy: SelectionPolicy,
): Ranking<T> {
  const holders = new Set(want.holders);
  const onHolder = want.kind === "download" || (want.kind === "upload" && want.resuming === true);
  const rule = onHolder ? null : ruleFor(policy, want.path);
  const excluded = (s: T): string | null => {
    if (!s.available) return s.unavailable ?? "offline";
    if (onHolder && !holders.has(s.name)) return "not a holder";
    if (want.kind === "copy" && holders.has(s.name)) return "already holds it";
    if (rule && ((rule.only.size > 0 && !rule.only.has(s.name)) || rule.exclude.has(s.name))) {
      return `excluded by rule ${rule.index} (${rule.path})`;
    }
    if (!onHolder && s.freeBytes < policy.minFree) {
      return `below min_free (${s.freeBytes} < ${policy.minFree} bytes free)`;
    }
    if (policy.maxTransfers > 0 && s.activeTransfers >= policy.maxTransfers) {
      return `max_transfers reached (${s.activeTransfers})`;
    }
    return null;
  };
  const all = slaves.map((slave) => ({ slave, excluded: excluded(slave) }));
  const ok = all.filter((a) => a.excluded === null).map((a) => a.slave);
  const mostFree = Math.max(1, ...ok.map((s) => s.freeBytes));
  const mostMoved = Math.max(0, ...ok.map((s) => s.throughput));
  const w = policy.weights;
  const assessed = all.map(({ slave, excluded }): Assessment<T> => {
    const terms = {
      free: onHolder ? 0 : Math.min(1, Math.max(0, slave.freeBytes) / (0.95 * mostFree)),
      transfers: slave.activeTransfers + slave.recentPicks,
      throughput: mostMoved > 0 ? slave.throughput / mostMoved : 0,
    };
    const preferred = excluded === null &&
      ((rule?.prefer.has(slave.name) ?? false) ||
        (want.kind === "upload" && holders.has(slave.name)));
    const score = excluded !== null
      ? 0
      : w.free * terms.free - w.transfers * terms.transfers - w.throughput * terms.throughput;
    return { slave, excluded, preferred, score, terms };
  });
  assessed.sort(compare);
  return { rule, slaves: assessed };
}

function compare<T extends Candidate>(a: Assessment<T>, b: Assessment<T>): number {
  const byName = a.slave.name < b.slave.name ? -1 : a.slave.name > b.slave.name ? 1 : 0;
  if ((a.excluded === null) !== (b.excluded === null)) return a.excluded === null ? -1 : 1;
  if (a.excluded !== null) return byName;
  if (a.preferred !== b.preferred) return a.preferred ? -1 : 1;
  if (Math.abs(a.score - b.score) > 1e-9) return b.score - a.score;
  if (a.slave.lastPicked !== b.slave.lastPicked) return a.slave.lastPicked - b.slave.lastPicked;
  return byName;
}

/** No slave can serve a transfer right now (none holds the file, or none may take it). */
export class NoSlaveError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "NoSlaveError";
  }
}

/** Most reasons a NoSlaveError names (a reply line stays short). */
const MAX_REASONS = 5;

/**
 * The one slave choice for a transfer or copy (see the module docs). Throws NoSlaveError naming
 * why none fits.
 */
export function chooseSlave<T extends Candidate>(
  slaves: readonly T[],
  want: SlaveWanted,
  policy: SelectionPolicy,
): T {
  const ranking = rankSlaves(slaves, want, policy);
  const best = ranking.slaves[0];
  if (best !== undefined && best.excluded === null) return best.slave;
  throw new NoSlaveError(whyNone(ranking, want));
}

/**
 * Up to `count` distinct slaves for `want` (the targets of new copies), best first; fewer when
 * fewer may serve.
 */
export function chooseSlaves<T extends Candidate>(
  slaves: readonly T[],
  want: SlaveWanted,
  options: { policy: SelectionPolicy; count: number },
): T[] {
  return rankSlaves(slaves, want, options.policy).slaves
    .filter((a) => a.excluded === null)
    .slice(0, Math.max(0, options.count))
    .map((a) => a.slave);
}

function whyNone<T extends Candidate>(ranking: Ranking<T>, want: SlaveWanted): string {
  const { path, holders } = want;
  const onHolder = want.kind === "download" || (want.kind === "upload" && want.resuming === true);
  const reasons = ranking.slaves.filter((a) => a.excluded !== "not a holder");
  if (onHolder) {
    if (holders.length === 0) return `${path} is not available: no slave holds it`;
    if (reasons.every((a) => !a.slave.available)) {
      const several = holders.length > 1;
      return `${path} is not available: its slave${several ? "s" : ""} (${holders.join(", ")}) ${
        several ? "are" : "is"
      } offline`;
    }
  } else if (reasons.every((a) => !a.slave.available)) {
    return "No slave is online to take uploads";
  }
  const shown = reasons.slice(0, MAX_REASONS).map((a) => `${a.slave.name} ${a.excluded}`);
  if (reasons.length > MAX_REASONS) shown.push(`${reasons.length - MAX_REASONS} more`);
  return onHolder
    ? `${path} is not available now: ${shown.join("; ")}`
    : `No slave can take ${path}: ${shown.join("; ")}`;
}

/**
 * SITE SLAVESELECT's lines for `ranking`: a heading naming the transfer, the rule and the
 * weights, then one line per slave, best first: its score and each term (with the free bytes
 * and bytes/s behind them), or why it is excluded.
 */
export function formatRanking<T extends Candidate>(
  ranking: Ranking<T>,
  options: { want: SlaveWanted; policy: SelectionPolicy },
): string[] {
  const { want, policy } = options;
  const { free, transfers, throughput } = policy.weights;
  const what = want.kind === "download"
    ? "a download"
    : want.kind === "copy"
    ? "a copy"
    : "an upload";
  const rule = ranking.rule === null
    ? "no path rule"
    : `rule ${ranking.rule.index} (${ruleText(ranking.rule)})`;
  const lines = [
    `Slaves for ${what} of ${want.path}: ${rule}; score = ${free} x free - ${transfers} x transfers - ${throughput} x throughput`,
  ];
  let chosen = false;
  for (const a of ranking.slaves) {
    const s = a.slave;
    if (a.excluded !== null) {
      lines.push(`${s.name} excluded: ${a.excluded}`);
      continue;
    }
    const mark = chosen ? "" : " (chosen)";
    chosen = true;
    lines.push(
      `${s.name} score=${a.score.toFixed(3)}${a.preferred ? " preferred" : ""}${mark} free=${
        a.terms.free.toFixed(3)
      } (${s.freeBytes} bytes) transfers=${a.terms.transfers} throughput=${
        a.terms.throughput.toFixed(3)
      } (${s.throughput} bytes/s)`,
    );
  }
  return lines;
}

function ruleText(rule: CompiledRule): string {
  const parts = [rule.path];
  for (const k of ["prefer", "only", "exclude"] as const) {
    if (rule[k].size > 0) parts.push(`${k} ${[...rule[k]].join(", ")}`);
  }
  return parts.join(": ");
}
