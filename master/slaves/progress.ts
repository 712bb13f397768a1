/**
 * Live progress of the transfers running on slaves: bytes so far and the current speed, fed by
 * the slaves' `progress` events. Pure bookkeeping (the caller passes the clock), so it is tested
 * without sockets.
 *
 * @module
 */

/** Over how much recent time the current speed is measured, ms. */
export const SPEED_WINDOW_MS = 3_000;

/**
 * A transfer that reports nothing for this long counts as stalled (speed 0); the slave reports
 * about every 0.5 s while bytes move.
 */
export const STALL_MS = 2_000;

/** Which way a running transfer moves bytes. */
export type TransferDirection =
  /** A client stores a file (STOR/APPE): the slave receives. */
  | "upload"
  /** A client reads a file (RETR): the slave sends. */
  | "download";

/** One running transfer, as `SlaveRegistry.activeTransfers()` shows it. */
export interface ActiveTransfer {
  /** The slave moving the bytes. */
  slave: string;
  /** The transfer's id on the link. */
  xfer: string;
  direction: TransferDirection;
  /** Virtual path of the file. */
  path: string;
  /** Bytes moved so far over the data connection (as last reported). */
  bytes: number;
  /** Current speed in bytes/s over the last SPEED_WINDOW_MS (0 when stalled or just started). */
  speed: number;
  /** When the master ordered the transfer, ms since the epoch. */
  started: number;
}

interface Sample {
  t: number;
  bytes: number;
}

/** Bytes over time of one transfer; `speed(now)` is the rate over the last SPEED_WINDOW_MS. */
export class SpeedMeter {
  #samples: Sample[];

  /** Starts at 0 bytes at time `now` (ms, any monotonic clock). */
  constructor(now: number) {
    this.#samples = [{ t: now, bytes: 0 }];
  }

  /** The last reported byte count. */
  get bytes(): number {
    return this.#samples.at(-1)!.bytes;
  }

  /** Records `bytes` moved so far at time `now`. Counts that go backwards are ignored. */
  add(now: number, bytes: number): void {
    if (bytes < this.bytes) return;
    this.#samples.push({ t: now, bytes });
    // Keep one sample at or before the window's start as the baseline.
    while (this.#samples.length > 2 && this.#samples[1]!.t <= now - SPEED_WINDOW_MS) {
      this.#samples.shift();
    }
  }

  /** Bytes per second over the last SPEED_WINDOW_MS up to the latest report; 0 when stalled. */
  speed(now: number): number {
    const last = this.#samples.at(-1)!;
    if (now - last.t > STALL_MS) return 0;
    let base = this.#samples[0]!;
    for (const s of this.#samples) {
      if (s.t <= last.t - SPEED_WINDOW_MS) base = s;
    }
    const ms = last.t - base.t;
    return ms <= 0 ? 0 : Math.round((last.bytes - base.bytes) * 1000 / ms);
  }
}

/** Over how much recent time a slave's throughput is measured for slave selection, ms. */
export const THROUGHPUT_WINDOW_MS = 30_000;

/** Width of one bucket of {@link RecentThroughput}, ms. */
const BUCKET_MS = 1_000;

/**
 * The bytes one slave moved recently, over all its transfers (client transfers and copies), in
 * 1 s buckets: `rate(now)` is bytes/s over the last THROUGHPUT_WINDOW_MS. At most
 * THROUGHPUT_WINDOW_MS / 1 s + 1 buckets are kept.
 */
export class RecentThroughput {
  #buckets: Sample[] = [];

  /** Records `bytes` more moved at time `now` (ms, any monotonic clock). */
  add(now: number, bytes: number): void {
    if (!(bytes > 0)) return;
    const t = Math.floor(now / BUCKET_MS) * BUCKET_MS;
    const last = this.#buckets.at(-1);
    if (last !== undefined && last.t >= t) last.bytes += bytes;
    else this.#buckets.push({ t, bytes });
    this.#prune(now);
  }

  /** Bytes per second over the last THROUGHPUT_WINDOW_MS (0 when nothing moved). */
  rate(now: number): number {
    this.#prune(now);
    let sum = 0;
    for (const b of this.#buckets) sum += b.bytes;
    return Math.round(sum * 1000 / THROUGHPUT_WINDOW_MS);
  }

  #prune(now: number): void {
    while (this.#buckets.length > 0 && this.#buckets[0]!.t <= now - THROUGHPUT_WINDOW_MS) {
      this.#buckets.shift();
    }
  }
}
