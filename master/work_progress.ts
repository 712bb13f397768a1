/**
 * Long work (remerges) that should show progress: files and bytes done, rate and ETA, logged at
 * a steady pace and listed for the status page and `/metrics`.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";

const log = getLogger(["drftpd", "master", "progress"]);

/** How often a running piece of work logs its progress, ms. */
export const PROGRESS_LOG_MS = 5000;

/** One piece of long work as the status page shows it. */
export interface WorkStatus {
  /** "remerge". */
  kind: string;
  slave: string;
  files: number;
  bytes: number;
  /** Files per second since the start. */
  filesPerSecond: number;
  /** Files expected in all, when known (e.g. what the slave held before), else null. */
  expectedFiles: number | null;
  /** Seconds left at the current rate, or null when unknown. */
  etaSeconds: number | null;
  /** ms since the epoch. */
  startedAt: number;
}

/** Handle of one running piece of work. */
export interface WorkHandle {
  /** `files` more files (of `bytes` bytes) are done. */
  add(files: number, bytes: number): void;
  /** Sets the expected total once known. */
  expect(files: number): void;
  /** The work ended (either way); calling it again does nothing. */
  end(): void;
}

/** "1.5 GiB", "820 KiB". */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${units[i]}`;
}

/** The progress line a piece of work logs: files, bytes, elapsed, rate and ETA. */
export function formatProgress(w: WorkStatus, now: number): string {
  const secs = Math.max(0, (now - w.startedAt) / 1000);
  const of = w.expectedFiles === null ? "" : ` of ~${w.expectedFiles}`;
  const eta = w.etaSeconds === null ? "" : `, ETA ${Math.ceil(w.etaSeconds)} s`;
  return `${w.files}${of} files (${formatBytes(w.bytes)}) in ${secs.toFixed(0)} s, ` +
    `${Math.round(w.filesPerSecond)} files/s${eta}`;
}

/** The long work running now. */
export class WorkProgress {
  readonly #running = new Map<number, WorkStatus>();
  #nextId = 1;
  readonly #now: () => number;

  /** `now` is injectable for tests. */
  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** Starts tracking (and logging every {@link PROGRESS_LOG_MS}) a piece of work. */
  start(kind: string, slave: string): WorkHandle {
    const id = this.#nextId++;
    const w: WorkStatus = {
      kind,
      slave,
      files: 0,
      bytes: 0,
      filesPerSecond: 0,
      expectedFiles: null,
      etaSeconds: null,
      startedAt: this.#now(),
    };
    this.#running.set(id, w);
    const timer = setInterval(() => {
      const s = this.#refresh(w);
      log.info("{Kind} of {slave}: {progress}", {
        Kind: kind[0]!.toUpperCase() + kind.slice(1),
        slave,
        progress: formatProgress(s, this.#now()),
      });
    }, PROGRESS_LOG_MS);
    let ended = false;
    return {
      add: (files, bytes) => {
        w.files += files;
        w.bytes += bytes;
      },
      expect: (files) => {
        w.expectedFiles = files;
      },
      end: () => {
        if (ended) return;
        ended = true;
        clearInterval(timer);
        this.#running.delete(id);
      },
    };
  }

  /** Every running piece of work with its current rate and ETA. */
  list(): WorkStatus[] {
    return [...this.#running.values()].map((w) => ({ ...this.#refresh(w) }));
  }

  #refresh(w: WorkStatus): WorkStatus {
    const secs = (this.#now() - w.startedAt) / 1000;
    w.filesPerSecond = secs > 0 ? w.files / secs : 0;
    // Past the expected count (the slave has more than it had) the ETA is unknown.
    w.etaSeconds = w.expectedFiles !== null && w.filesPerSecond > 0 && w.files < w.expectedFiles
      ? (w.expectedFiles - w.files) / w.filesPerSecond
      : null;
    return w;
  }
}
