/**
 * What the site is doing, counted in one place: sessions, logins, transfers and bytes (by
 * direction, result and data path), transfers running now with their progress, and a short
 * throughput history per slave. The FTP code reports at a few clear points (session start/end,
 * login, transfer start/end); the HTTP side (`master/http/`) reads snapshots; the xferlog
 * subscribes to finished transfers.
 *
 * @module
 */

/** Which way the bytes went, seen from the site. */
export type Direction = "upload" | "download";

/**
 * Which way the bytes took: straight between client and slave, through a sibling slave that
 * fetched them from the holder, or relayed by the master (no PRET, or the 227 address ignored).
 */
export type DataRoute = "direct" | "sibling" | "relayed";

/**
 * How the master itself carried file bytes: `relay` (PASV without PRET answered on the master's
 * own port) or `pasv_proxy` (a client ignored a slave's 227 address and connected to the master).
 */
export type RelayWay = "relay" | "pasv_proxy";

/** How a transfer ended. */
export type Outcome = "complete" | "failed" | "aborted";

/** What a transfer is, as known when it starts. */
export interface TransferInfo {
  user: string;
  remoteHost: string;
  /** Virtual path. */
  path: string;
  direction: Direction;
  route: DataRoute;
  slave: string;
  ascii: boolean;
  /** Expected size (downloads), or null. */
  size: number | null;
}

/** A running transfer (what the status page lists). */
export interface ActiveTransfer extends TransferInfo {
  id: number;
  /** Wall-clock start, ms since the epoch. */
  started: number;
  /** Bytes moved so far (as last reported by the slave). */
  bytes: number;
}

/** A finished transfer (what the xferlog writes). */
export interface FinishedTransfer extends ActiveTransfer {
  outcome: Outcome;
  /** Duration, ms. */
  ms: number;
}

/** Handle of one running transfer. */
export interface TransferTracker {
  /** The slave reported `bytes` moved so far. */
  progress(bytes: number): void;
  /**
   * The bytes took another path than announced at start (a client that ignored the 227 address
   * went through the master's PASV proxy).
   */
  reroute(route: DataRoute): void;
  /** The transfer ended; calling it again does nothing. */
  end(outcome: Outcome, bytes?: number): void;
}

/** Bytes per second of each slave (and "" for the whole site) at one moment. */
export interface ThroughputSample {
  /** ms since the epoch. */
  at: number;
  total: number;
  slaves: Record<string, number>;
}

/** Login results counted. */
export type LoginResult = "ok" | "failed" | "refused";

/** Samples a throughput rate is averaged over. */
export const RATE_WINDOW = 3;

/** Most throughput samples kept: 5 minutes at one a second. */
export const HISTORY_SECONDS = 300;

/** Counters and live state of one master. Cheap to update: plain maps, no I/O. */
export class SiteMetrics {
  sessions = 0;
  readonly #logins = new Map<LoginResult, number>();
  /** `direction|outcome|route` → count. */
  readonly #transfers = new Map<string, number>();
  /** `direction|outcome|route` → bytes of finished transfers. */
  readonly #bytes = new Map<string, number>();
  readonly #active = new Map<number, ActiveTransfer>();
  readonly #relayed = new Map<RelayWay, number>();
  /** Bytes of finished transfers per slave, for throughput. */
  readonly #slaveBytes = new Map<string, number>();
  readonly #history: ThroughputSample[] = [];
  /** Bytes moved per slave at the last few samples. */
  readonly #moved: { at: number; moved: Map<string, number> }[] = [];
  #nextId = 1;
  readonly #finishedListeners = new Set<(t: FinishedTransfer) => void>();
  readonly #now: () => number;

  /** `now` is injectable for tests. */
  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** Counts a login attempt. */
  login(result: LoginResult): void {
    this.#logins.set(result, (this.#logins.get(result) ?? 0) + 1);
  }

  /** A transfer started: it is listed as active until `end`. */
  startTransfer(info: TransferInfo): TransferTracker {
    const t: ActiveTransfer = { ...info, id: this.#nextId++, started: this.#now(), bytes: 0 };
    this.#active.set(t.id, t);
    let ended = false;
    return {
      progress: (bytes) => {
        if (!ended) t.bytes = Math.max(t.bytes, bytes);
      },
      reroute: (route) => {
        if (!ended) t.route = route;
      },
      end: (outcome, bytes) => {
        if (ended) return;
        ended = true;
        if (bytes !== undefined) t.bytes = bytes;
        this.#active.delete(t.id);
        const k = `${t.direction}|${outcome}|${t.route}`;
        this.#transfers.set(k, (this.#transfers.get(k) ?? 0) + 1);
        this.#bytes.set(k, (this.#bytes.get(k) ?? 0) + t.bytes);
        this.#slaveBytes.set(t.slave, (this.#slaveBytes.get(t.slave) ?? 0) + t.bytes);
        const done: FinishedTransfer = { ...t, outcome, ms: Math.max(0, this.#now() - t.started) };
        for (const fn of this.#finishedListeners) fn(done);
      },
    };
  }

  /** The master carried `bytes` of file data itself (counted as they move). */
  relayed(way: RelayWay, bytes: number): void {
    this.#relayed.set(way, (this.#relayed.get(way) ?? 0) + bytes);
  }

  /** File bytes the master carried itself so far, by way (both always present). */
  relayedBytes(): Record<RelayWay, number> {
    return {
      relay: this.#relayed.get("relay") ?? 0,
      pasv_proxy: this.#relayed.get("pasv_proxy") ?? 0,
    };
  }

  /** Calls `fn` for every finished transfer; returns the unsubscribe function. */
  onFinished(fn: (t: FinishedTransfer) => void): () => void {
    this.#finishedListeners.add(fn);
    return () => this.#finishedListeners.delete(fn);
  }

  /** Transfers running now, oldest first (copies). */
  active(): ActiveTransfer[] {
    return [...this.#active.values()].map((t) => ({ ...t }));
  }

  /** Login counts by result. */
  logins(): Record<LoginResult, number> {
    return {
      ok: this.#logins.get("ok") ?? 0,
      failed: this.#logins.get("failed") ?? 0,
      refused: this.#logins.get("refused") ?? 0,
    };
  }

  /** Finished transfers by direction, outcome and route. */
  transfers(): { direction: Direction; outcome: Outcome; route: DataRoute; count: number }[] {
    return [...this.#transfers].map(([k, count]) => {
      const [direction, outcome, route] = k.split("|") as [Direction, Outcome, DataRoute];
      return { direction, outcome, route, count };
    });
  }

  /** Bytes of finished transfers by direction, outcome and route. */
  bytes(): { direction: Direction; outcome: Outcome; route: DataRoute; bytes: number }[] {
    return [...this.#bytes].map(([k, bytes]) => {
      const [direction, outcome, route] = k.split("|") as [Direction, Outcome, DataRoute];
      return { direction, outcome, route, bytes };
    });
  }

  /** Bytes each slave moved so far, finished and running transfers together. */
  movedBySlave(): Map<string, number> {
    const out = new Map(this.#slaveBytes);
    for (const t of this.#active.values()) out.set(t.slave, (out.get(t.slave) ?? 0) + t.bytes);
    return out;
  }

  /**
   * Takes a throughput sample and keeps the last {@link HISTORY_SECONDS}. The HTTP side calls it
   * once a second. Rates are averaged over the last {@link RATE_WINDOW} samples, because slaves
   * report progress about once a second and a one-second delta would flicker.
   */
  sample(): ThroughputSample {
    const at = this.#now();
    const moved = this.movedBySlave();
    this.#moved.push({ at, moved });
    if (this.#moved.length > RATE_WINDOW + 1) this.#moved.shift();
    const first = this.#moved[0]!;
    const secs = Math.max(0.001, (at - first.at) / 1000);
    const slaves: Record<string, number> = {};
    let total = 0;
    for (const [name, bytes] of moved) {
      const rate = first === this.#moved.at(-1)
        ? 0
        : Math.max(0, (bytes - (first.moved.get(name) ?? bytes)) / secs);
      slaves[name] = Math.round(rate);
      total += rate;
    }
    const s = { at, total: Math.round(total), slaves };
    this.#history.push(s);
    if (this.#history.length > HISTORY_SECONDS) this.#history.shift();
    return s;
  }

  /** The kept throughput samples, oldest first. */
  history(): ThroughputSample[] {
    return [...this.#history];
  }
}
