/**
 * `[[replication]]`: keeps each file under a rule's path on `copies` distinct online slaves.
 * After an upload completes under a rule (and, for files already there, when a holder comes
 * online), the file is queued; each queued file is brought to its rule: copies are made slave to
 * slave (`copy.ts`) onto the slaves `[selection]` ranks first for a copy (`selection.ts`: never
 * a holder, path rules and limits obeyed), and copies beyond the
 * rule are removed (from the fullest holders) once more than the rule's number are online.
 *
 * At most `[slaves] copies_per_slave` copies run at once in all, so no slave sends or receives
 * more than that. Files outside every rule are never touched (a `SITE COPY` stays).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { ReplicationRule } from "../../shared/config_types.ts";
import { globRegExp } from "../auth/path_rules.ts";
import { type CopyDeps, copyToSlave } from "./copy.ts";
import type { WorkHandle, WorkProgress } from "../work_progress.ts";

const log = getLogger(["drftpd", "master", "replication"]);

/** Most files waiting for their copies; more are dropped (a later upload or reconnect re-queues). */
const MAX_QUEUED = 100_000;

/** Replication work now and so far, for `/metrics`. */
export interface ReplicationStats {
  /** Files waiting for their copies. */
  queued: number;
  /** Files being brought to their rule now. */
  running: number;
  /** Copies made since the start. */
  copied: number;
  /** Copies that failed since the start. */
  failed: number;
}

/** Orders copies and removes surplus ones so each file matches its `[[replication]]` rule. */
export class Replicator {
  #deps: CopyDeps;
  #rules: { re: RegExp; copies: number }[];
  #workers: number;
  #queue = new Set<string>();
  #busy = 0;
  #signal: AbortSignal;
  #idle: (() => void)[] = [];
  #healAfterMs: number;
  #healTimers = new Map<string, ReturnType<typeof setTimeout>>();
  #work: WorkProgress | undefined;
  /** Progress of the current burst of work (from busy to idle), on the status page and logged. */
  #progress: WorkHandle | undefined;
  #copied = 0;
  #failed = 0;
  /** Files handled in the current burst. */
  #burstDone = 0;

  /** Applies `rules` (first match wins) with at most `perSlave` copies at once. */
  constructor(
    deps: CopyDeps,
    rules: readonly ReplicationRule[],
    options: { perSlave: number; signal: AbortSignal; healAfterMs?: number; work?: WorkProgress },
  ) {
    this.#work = options.work;
    this.#healAfterMs = options.healAfterMs ?? 600_000;
    options.signal.addEventListener("abort", () => {
      for (const t of this.#healTimers.values()) clearTimeout(t);
      this.#healTimers.clear();
    }, { once: true });
    this.#deps = deps;
    this.#rules = rules.map((r) => ({ re: globRegExp(r.path), copies: r.copies }));
    this.#workers = options.perSlave;
    this.#signal = options.signal;
  }

  /** The copies the first matching rule asks for, or null when no rule matches `path`. */
  wanted(path: string): number | null {
    return this.#rules.find((r) => r.re.test(path))?.copies ?? null;
  }

  /** A file was uploaded or changed: bring it to its rule (no-op outside every rule). */
  fileChanged(path: string): void {
    if (this.wanted(path) === null || this.#signal.aborted) return;
    if (this.#queue.size >= MAX_QUEUED) return;
    this.#queue.add(path);
    this.#pump();
  }

  /**
   * A slave went offline: once it has been away for `healAfterMs`, its files that fall under a
   * rule are copied to other slaves so each rule holds again (self-healing).
   */
  slaveOffline(name: string): void {
    if (this.#rules.length === 0 || this.#signal.aborted) return;
    clearTimeout(this.#healTimers.get(name));
    this.#healTimers.set(
      name,
      setTimeout(() => {
        this.#healTimers.delete(name);
        if (this.#deps.registry.get(name) !== undefined) return; // back already
        log.info("Slave {name} offline for {s} s: copying its files elsewhere", {
          name,
          s: Math.round(this.#healAfterMs / 1000),
        });
        this.slaveOnline(name).catch((e) =>
          log.warn("Healing the files of {name} failed: {error}", { name, error: String(e) })
        );
      }, this.#healAfterMs),
    );
  }

  /**
   * A slave came online (or, from `slaveOffline`, stayed away too long): queue the files it
   * holds that fall under a rule. Back online, the surplus copies healing made are trimmed.
   */
  async slaveOnline(name: string): Promise<void> {
    clearTimeout(this.#healTimers.get(name));
    this.#healTimers.delete(name);
    if (this.#rules.length === 0) return;
    for await (const path of this.#deps.filelist.filesHeldBy(name)) {
      if (this.#signal.aborted) return;
      this.fileChanged(path);
    }
  }

  /** Resolves when nothing is queued or running (for tests and a clean stop). */
  idle(): Promise<void> {
    if (this.#busy === 0 && this.#queue.size === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  /** Queued, running, copied and failed counts. */
  stats(): ReplicationStats {
    return {
      queued: this.#queue.size,
      running: this.#busy,
      copied: this.#copied,
      failed: this.#failed,
    };
  }

  #pump(): void {
    if (this.#progress === undefined && this.#queue.size > 0 && this.#work !== undefined) {
      this.#progress = this.#work.start("replication", "all slaves");
      this.#burstDone = 0;
    }
    this.#progress?.expect(this.#burstDone + this.#busy + this.#queue.size);
    while (this.#busy < this.#workers && this.#queue.size > 0 && !this.#signal.aborted) {
      const path = this.#queue.values().next().value!;
      this.#queue.delete(path);
      this.#busy++;
      this.#reconcile(path)
        .catch((e) => log.warn("Replication of {path} failed: {error}", { path, error: String(e) }))
        .finally(() => {
          this.#busy--;
          this.#burstDone++;
          this.#progress?.add(1, 0);
          this.#pump();
          if (this.#busy === 0 && this.#queue.size === 0) {
            this.#progress?.end();
            this.#progress = undefined;
            for (const wake of this.#idle.splice(0)) wake();
          }
        });
    }
  }

  /** Makes the missing copies of `path`, or removes the surplus ones. */
  async #reconcile(path: string): Promise<void> {
    const want = this.wanted(path);
    if (want === null) return;
    const { filelist, registry } = this.#deps;
    const entry = await filelist.get(path);
    if (entry === null || entry.kind !== "file") return;
    const online = entry.slaves.filter((n) => registry.get(n)?.available);
    if (online.length === 0) return; // nothing to copy from
    if (online.length < want) {
      // Targets as `[selection]` ranks them for a copy (never a holder; path rules obeyed).
      const targets = registry.chooseMany(
        { kind: "copy", path, holders: entry.slaves },
        want - online.length,
      );
      if (targets.length < want - online.length) {
        log.debug("{path}: {n} of its {missing} missing copies have no slave that may take them", {
          path,
          n: want - online.length - targets.length,
          missing: want - online.length,
        });
      }
      for (const target of targets) {
        if (this.#signal.aborted) return;
        try {
          await copyToSlave(this.#deps, path, target.name);
          this.#copied++;
          this.#progress?.add(0, entry.size);
        } catch (e) {
          this.#failed++;
          log.warn("Copy of {path} to {slave} failed: {error}", {
            path,
            slave: target.name,
            error: String(e),
          });
        }
      }
      return;
    }
    if (online.length > want) {
      // Surplus: drop the copies on the fullest online holders, keeping `want`.
      const surplus = online
        .map((n) => registry.get(n)!)
        .sort((a, b) => a.disk.free - b.disk.free)
        .slice(0, online.length - want);
      for (const slave of surplus) {
        const still = await filelist.get(path);
        if (still === null || still.kind !== "file") return;
        const onlineNow = still.slaves.filter((n) => registry.get(n)?.available);
        if (onlineNow.length <= want) return;
        await filelist.removeHolder(path, slave.name);
        await slave.request("delete", { path }).catch((e) =>
          log.warn("Removing the surplus copy of {path} on {slave} failed: {error}", {
            path,
            slave: slave.name,
            error: String(e),
          })
        );
        log.info("Removed the surplus copy of {path} on {slave}", { path, slave: slave.name });
      }
    }
  }
}
