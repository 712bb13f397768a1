/**
 * `[[replication]]`: keeps each file under a rule's path on `copies` distinct online slaves.
 * After an upload completes under a rule (and, for files already there, when a holder comes
 * online, or after a reload), the file is queued; each queued file is brought to its rule: copies
 * are made slave to slave (`copy.ts`) onto the slaves `[selection]` ranks first for a copy
 * (`selection.ts`: never a holder, path rules and limits obeyed) that have a free copy slot, and
 * copies beyond the rule are removed (from the fullest holders) once more than the rule's number
 * are online.
 *
 * Copies take slots: a slave sends or receives at most `[slaves] copies_per_slave` replication
 * copies at once (`[slaves.copies]` overrides it per slave), and only `copies_while_busy` while
 * it serves client transfers, so copies yield to clients. A file whose copy finds no slot on a
 * source and a target waits (`waiting`) and is tried again when a copy ends, and every second
 * while files wait. Files outside every rule are never touched (a `SITE COPY` stays).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { MasterConfig, ReplicationRule } from "../../shared/config_types.ts";
import { globRegExp } from "../auth/path_rules.ts";
import { type CopyDeps, copyToSlave } from "./copy.ts";
import type { SlaveHandle } from "./slave_handle.ts";
import type { WorkHandle, WorkProgress } from "../work_progress.ts";

const log = getLogger(["drftpd", "master", "replication"]);

/** Most files waiting for their copies; more are dropped (a later upload or reconnect re-queues). */
const MAX_QUEUED = 100_000;

/** Files brought to their rule at once (their copies still need slots on both slaves). */
const MAX_RECONCILING = 32;

/** Copy failures remembered for SITE REPLICATION. */
const MAX_ERRORS = 10;

/** How often files waiting for a slot are tried again (client transfers end without an event). */
const RETRY_MS = 1000;

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

/** The settings a reload may change. */
export interface ReplicationSettings {
  rules: readonly ReplicationRule[];
  /** `[slaves] copies_per_slave`: copies one slave takes part in at once. */
  perSlave: number;
  /** `[slaves.copies]`: `perSlave` for named slaves. */
  perSlaveFor?: Readonly<Record<string, number>>;
  /** `[slaves] copies_while_busy`: the cap while a slave serves client transfers. */
  whileBusy?: number;
  /** `[slaves] heal_after`, in ms. */
  healAfterMs?: number;
}

/** The replication settings of a master.toml. */
export function replicationSettings(config: MasterConfig): ReplicationSettings {
  return {
    rules: config.replication,
    perSlave: config.slaves.copies_per_slave,
    perSlaveFor: config.slaves.copies,
    whileBusy: config.slaves.copies_while_busy,
    healAfterMs: config.slaves.heal_after * 1000,
  };
}

/** A copy running now (SITE REPLICATION). */
export interface RunningCopy {
  path: string;
  from: string;
  to: string;
  /** Bytes received so far, of `size`. */
  bytes: number;
  size: number;
  started: number;
}

/** A copy that failed (SITE REPLICATION keeps the last few). */
export interface CopyFailure {
  at: number;
  path: string;
  to: string;
  error: string;
}

/** Everything SITE REPLICATION shows. */
export interface ReplicationReport extends ReplicationStats {
  /** Files that need a copy but found no free slot; tried again as slots free. */
  waiting: number;
  copies: RunningCopy[];
  errors: CopyFailure[];
}

/** Orders copies and removes surplus ones so each file matches its `[[replication]]` rule. */
export class Replicator {
  #deps: CopyDeps;
  #rules: { re: RegExp; copies: number }[] = [];
  #settings!: Required<ReplicationSettings>;
  #queue = new Set<string>();
  #waiting = new Set<string>();
  /** Files being brought to their rule now (never two at once for one file). */
  #active = new Set<string>();
  #retry: ReturnType<typeof setInterval> | undefined;
  #busy = 0;
  #signal: AbortSignal;
  #idle: (() => void)[] = [];
  #healTimers = new Map<string, ReturnType<typeof setTimeout>>();
  #work: WorkProgress | undefined;
  /** Progress of the current burst of work (from busy to idle), on the status page and logged. */
  #progress: WorkHandle | undefined;
  #copied = 0;
  #failed = 0;
  /** Files handled in the current burst. */
  #burstDone = 0;
  /** Replication copies each slave sends or receives now. */
  #slots = new Map<string, number>();
  #copies = new Set<RunningCopy>();
  /** A copy ended (its slots are free) since waiting files were last woken. */
  #freed = false;
  #errors: CopyFailure[] = [];

  /** Applies `settings` (rules: first match wins). */
  constructor(
    deps: CopyDeps,
    settings: ReplicationSettings,
    options: { signal: AbortSignal; work?: WorkProgress },
  ) {
    this.#work = options.work;
    options.signal.addEventListener("abort", () => {
      for (const t of this.#healTimers.values()) clearTimeout(t);
      this.#healTimers.clear();
      clearInterval(this.#retry);
    }, { once: true });
    this.#deps = deps;
    this.#signal = options.signal;
    this.#apply(settings);
  }

  #apply(settings: ReplicationSettings): void {
    this.#settings = {
      perSlaveFor: {},
      whileBusy: 1,
      healAfterMs: 600_000,
      ...settings,
    };
    this.#rules = settings.rules.map((r) => ({ re: globRegExp(r.path), copies: r.copies }));
  }

  /**
   * New settings (a config reload): the rules apply to every file the online slaves hold, which
   * are queued again (copies made or trimmed to the new numbers).
   */
  async reconfigure(settings: ReplicationSettings): Promise<void> {
    this.#apply(settings);
    if (this.#rules.length === 0) return;
    await this.#queueHeldBy(
      this.#deps.registry.connected().filter((s) => s.available).map((s) => s.name),
    );
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
          s: Math.round(this.#settings.healAfterMs / 1000),
        });
        this.slaveOnline(name).catch((e) =>
          log.warn("Healing the files of {name} failed: {error}", { name, error: String(e) })
        );
      }, this.#settings.healAfterMs),
    );
  }

  /**
   * A slave came online (or, from `slaveOffline`, stayed away too long): queue the files it
   * holds that fall under a rule. Back online, the surplus copies healing made are trimmed. A
   * slave online now is also new room: the files of every other online slave are queued too
   * (a file may lack copies because no slave was free for them, or a collision was set aside).
   */
  async slaveOnline(name: string): Promise<void> {
    clearTimeout(this.#healTimers.get(name));
    this.#healTimers.delete(name);
    if (this.#rules.length === 0) return;
    const names = new Set([name]);
    if (this.#deps.registry.get(name)?.available) {
      for (const s of this.#deps.registry.connected()) if (s.available) names.add(s.name);
    }
    await this.#queueHeldBy(names);
  }

  /** Queues every file the slaves in `names` hold (each file once while it is queued). */
  async #queueHeldBy(names: Iterable<string>): Promise<void> {
    for (const name of names) {
      for await (const path of this.#deps.filelist.filesHeldBy(name)) {
        if (this.#signal.aborted) return;
        this.fileChanged(path);
      }
    }
  }

  /** Resolves when nothing is queued, waiting or running (for tests and a clean stop). */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  /** Queued, running, copied and failed counts. */
  stats(): ReplicationStats {
    return {
      queued: this.#queue.size + this.#waiting.size,
      running: this.#busy,
      copied: this.#copied,
      failed: this.#failed,
    };
  }

  /** The counts, the copies running now with their progress, and the last failures. */
  report(): ReplicationReport {
    return {
      ...this.stats(),
      queued: this.#queue.size,
      waiting: this.#waiting.size,
      copies: [...this.#copies].map((c) => ({ ...c })),
      errors: [...this.#errors],
    };
  }

  #isIdle(): boolean {
    return this.#busy === 0 && this.#queue.size === 0 && this.#waiting.size === 0;
  }

  #pump(): void {
    if (this.#progress === undefined && this.#queue.size > 0 && this.#work !== undefined) {
      this.#progress = this.#work.start("replication", "all slaves");
      this.#burstDone = 0;
    }
    this.#progress?.expect(this.#burstDone + this.#busy + this.#queue.size);
    while (this.#busy < MAX_RECONCILING && this.#queue.size > 0 && !this.#signal.aborted) {
      const path = this.#queue.values().next().value!;
      this.#queue.delete(path);
      if (this.#active.has(path)) {
        this.#wait(path); // its copies are still running: look again once they end
        continue;
      }
      this.#busy++;
      this.#active.add(path);
      this.#reconcile(path)
        .catch((e) => log.warn("Replication of {path} failed: {error}", { path, error: String(e) }))
        .finally(() => {
          this.#active.delete(path);
          this.#busy--;
          if (this.#freed && this.#waiting.size > 0) this.#wake();
          this.#freed = false;
          this.#burstDone++;
          this.#progress?.add(1, 0);
          this.#pump();
          if (this.#isIdle()) {
            this.#progress?.end();
            this.#progress = undefined;
            for (const wake of this.#idle.splice(0)) wake();
          }
        });
    }
  }

  /** `path` needs a copy but no slot is free: try it again when one frees (or in a second). */
  #wait(path: string): void {
    if (this.#signal.aborted) return;
    this.#waiting.add(path);
    this.#retry ??= setInterval(() => this.#wake(), RETRY_MS);
  }

  /** Puts the waiting files back in the queue. */
  #wake(): void {
    for (const path of this.#waiting) if (this.#queue.size < MAX_QUEUED) this.#queue.add(path);
    this.#waiting.clear();
    clearInterval(this.#retry);
    this.#retry = undefined;
    this.#pump();
  }

  /** Copies `slave` may still take part in now (its cap, lowered while clients use it). */
  #freeSlots(slave: SlaveHandle): number {
    const { perSlave, perSlaveFor, whileBusy } = this.#settings;
    let cap = perSlaveFor[slave.name] ?? perSlave;
    if (slave.activeTransfers > slave.copies) cap = Math.min(cap, whileBusy);
    return cap - (this.#slots.get(slave.name) ?? 0);
  }

  #take(slave: string, n: number): void {
    this.#slots.set(slave, (this.#slots.get(slave) ?? 0) + n);
  }

  /** Makes the missing copies of `path`, or removes the surplus ones. */
  async #reconcile(path: string): Promise<void> {
    const want = this.wanted(path);
    if (want === null) return;
    const { filelist, registry } = this.#deps;
    const entry = await filelist.get(path);
    if (entry === null || entry.kind !== "file") return;
    const online = entry.slaves.map((n) => registry.get(n)).filter((s) => s?.available)
      .map((s) => s!);
    if (online.length === 0) return; // nothing to copy from
    if (online.length < want) {
      // Targets as `[selection]` ranks them for a copy (never a holder; path rules obeyed), all
      // of them: the first with a free slot take it.
      const targets = registry.chooseMany(
        { kind: "copy", path, holders: entry.slaves },
        registry.connected().length,
      );
      if (targets.length < want - online.length) {
        log.debug("{path}: {n} of its {missing} missing copies have no slave that may take them", {
          path,
          n: want - online.length - targets.length,
          missing: want - online.length,
        });
      }
      const needed = Math.min(want - online.length, targets.length);
      // Pairs (source, target) with a free slot on both, taken now so no other file takes them.
      const pairs: [SlaveHandle, SlaveHandle][] = [];
      for (const target of targets) {
        if (pairs.length === needed) break;
        if (this.#freeSlots(target) <= 0) continue;
        const source = online.filter((s) => this.#freeSlots(s) > 0)
          .sort((a, b) => a.activeTransfers - b.activeTransfers)[0];
        if (source === undefined) break;
        this.#take(source.name, 1);
        this.#take(target.name, 1);
        pairs.push([source, target]);
      }
      if (pairs.length < needed) this.#wait(path);
      await Promise.all(pairs.map(([source, target]) => this.#copy(path, source, target)));
      return;
    }
    if (online.length > want) {
      // Surplus: drop the copies on the fullest online holders, keeping `want`.
      const surplus = online
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

  /** One copy of `path` on slots already taken on `source` and `target` (released here). */
  async #copy(path: string, source: SlaveHandle, target: SlaveHandle): Promise<void> {
    const running: RunningCopy = {
      path,
      from: source.name,
      to: target.name,
      bytes: 0,
      size: 0,
      started: Date.now(),
    };
    this.#copies.add(running);
    try {
      if (this.#signal.aborted) return;
      await copyToSlave(this.#deps, path, target.name, {
        from: source.name,
        onProgress: (bytes, size) => (running.bytes = bytes, running.size = size),
      });
      this.#copied++;
      this.#progress?.add(0, running.size);
    } catch (e) {
      this.#failed++;
      this.#errors.push({ at: Date.now(), path, to: target.name, error: String(e) });
      this.#errors.splice(0, this.#errors.length - MAX_ERRORS);
      log.warn("Copy of {path} to {slave} failed: {error}", {
        path,
        slave: target.name,
        error: String(e),
      });
    } finally {
      this.#copies.delete(running);
      this.#take(source.name, -1);
      this.#take(target.name, -1);
      this.#freed = true;
    }
  }
}
