/**
 * The slave registry: which slaves are known (persisted in KV), which are connected, and
 * picking one for a transfer.
 */
import { getLogger } from "@logtape/logtape";
import { type NamespaceOp, OpQueue } from "./op_queue.ts";
import type { ActiveTransfer } from "./progress.ts";
import { WorkProgress } from "../work_progress.ts";
import { parseMasterConfig } from "../../shared/config.ts";
import type { SelectionConfig } from "../../shared/config_types.ts";
import {
  type Candidate,
  chooseSlave,
  chooseSlaves,
  NoSlaveError,
  type Ranking,
  rankSlaves,
  type SelectionPolicy,
  selectionPolicy,
  type SlaveWanted,
} from "./selection.ts";
import type { SlaveHandle } from "./slave_handle.ts";

const log = getLogger(["drftpd", "master", "slaves"]);

/** What SITE SLAVES shows for one slave. */
export interface SlaveStatus {
  name: string;
  state: "online" | "remerging" | "offline";
  /** An online slave whose full remerge (SITE REMERGE) is running. */
  remerging: boolean;
  /** A connected slave silent past `[slaves] unresponsive_after`: passed over for now. */
  unresponsive: boolean;
  address: string;
  free: number;
  total: number;
  activeTransfers: number;
  lastSeen: number;
}

interface KnownSlave {
  lastSeen: number;
  address: string;
}

/** Connected and known slaves. */
export class SlaveRegistry {
  #kv: Deno.Kv;
  #connected = new Map<string, SlaveHandle>();
  /** Called whenever a slave comes online (see {@link whenOnline}). */
  #onlineWaiters = new Set<() => void>();
  #onlineListeners = new Set<(slave: SlaveHandle) => void>();
  #offlineListeners = new Set<(name: string) => void>();
  /** Operations offline slaves missed. */
  readonly queue: OpQueue;
  /** Remerges running now, with their progress (logged, and shown on the status page). */
  readonly work = new WorkProgress();

  #policy: SelectionPolicy;

  /** `[selection]` as the registry applies it. */
  get policy(): SelectionPolicy {
    return this.#policy;
  }

  /**
   * Uses `kv` to remember slaves across restarts and `selection` (`[selection]` of master.toml;
   * default: its defaults) to pick them.
   */
  constructor(kv: Deno.Kv, selection?: SelectionConfig) {
    this.#kv = kv;
    this.#policy = selectionPolicy(selection ?? parseMasterConfig("", null, "/").selection);
    this.queue = new OpQueue(kv);
  }

  /** Names of every slave ever seen (connected or not). */
  async known(): Promise<string[]> {
    const names = new Set(this.#connected.keys());
    for await (const e of this.#kv.list({ prefix: ["slave"] })) names.add(String(e.key[1]));
    return [...names];
  }

  /** The connected slave called `name`, if any. */
  get(name: string): SlaveHandle | undefined {
    return this.#connected.get(name);
  }

  /**
   * Tells every slave whose remerge is running about a namespace change the master is about to
   * make (call it BEFORE changing the filelist; see `SlaveHandle.trackChanges`).
   */
  noteChange(op: NamespaceOp): void {
    for (const s of this.#connected.values()) s.noteChange(op);
  }

  /** All connected slaves (remerging or online). */
  connected(): SlaveHandle[] {
    return [...this.#connected.values()];
  }

  /** Adds a freshly authenticated slave. Returns false when one of that name is already connected. */
  async attach(slave: SlaveHandle): Promise<boolean> {
    if (this.#connected.has(slave.name)) return false;
    this.#connected.set(slave.name, slave);
    await this.#kv.set(
      ["slave", slave.name],
      {
        lastSeen: Date.now(),
        address: slave.address,
      } satisfies KnownSlave,
    );
    return true;
  }

  /** Calls `fn` whenever a slave comes online (after its first remerge); returns the unsubscribe. */
  onSlaveOnline(fn: (slave: SlaveHandle) => void): () => void {
    this.#onlineListeners.add(fn);
    return () => this.#onlineListeners.delete(fn);
  }

  /** Calls `fn` with the name of every slave whose link went away; returns the unsubscribe. */
  onSlaveOffline(fn: (name: string) => void): () => void {
    this.#offlineListeners.add(fn);
    return () => this.#offlineListeners.delete(fn);
  }

  /** Marks a connected slave online (its first remerge is complete) and wakes {@link whenOnline}. */
  markOnline(slave: SlaveHandle): void {
    slave.state = "online";
    for (const fn of [...this.#onlineListeners]) fn(slave);
    for (const wake of [...this.#onlineWaiters]) wake();
  }

  /** Resolves once every slave in `names` is connected and online; rejects when `signal` aborts. */
  whenOnline(names: readonly string[], signal: AbortSignal): Promise<void> {
    const allOnline = () => names.every((n) => this.#connected.get(n)?.state === "online");
    if (allOnline()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => {
        this.#onlineWaiters.delete(check);
        signal.removeEventListener("abort", onAbort);
      };
      const check = () => {
        if (allOnline()) (done(), resolve());
      };
      const onAbort = () => (done(), reject(signal.reason));
      this.#onlineWaiters.add(check);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Removes a slave whose link is gone. */
  async detach(slave: SlaveHandle): Promise<void> {
    if (this.#connected.get(slave.name) !== slave) return;
    this.#connected.delete(slave.name);
    for (const fn of [...this.#offlineListeners]) fn(slave.name);
    await this.#kv.set(
      ["slave", slave.name],
      {
        lastSeen: Date.now(),
        address: slave.address,
      } satisfies KnownSlave,
    ).catch((e) =>
      log.warn("Could not record slave {name}: {e}", {
        name: slave.name,
        e: String(e),
      })
    );
  }

  /**
   * The client transfers running on connected slaves now: slave, transfer id, direction, path,
   * bytes so far and the current speed (bytes/s over the last few seconds, from the slaves'
   * `progress` events, which come about twice a second while bytes move). Sorted by start time.
   * For SITE WHO and the status page.
   */
  activeTransfers(): ActiveTransfer[] {
    return this.connected().flatMap((s) => s.transfers()).sort((a, b) => a.started - b.started);
  }

  /**
   * The slave for a transfer or copy (see `selection.ts#chooseSlave`); throws NoSlaveError when
   * none fits.
   */
  choose(want: SlaveWanted): SlaveHandle {
    let s: SlaveHandle;
    try {
      s = chooseSlave(this.connected().map(candidate), want, this.#policy).handle;
    } catch (e) {
      const silent = this.connected().filter((c) => c.unresponsive).map((c) => c.name);
      if (!(e instanceof NoSlaveError) || silent.length === 0) throw e;
      throw new NoSlaveError(`${e.message} (not responding: ${silent.join(", ")})`);
    }
    s.picked();
    return s;
  }

  /** Up to `count` targets for new copies of a file (`want.kind` "copy"), best first. */
  chooseMany(want: SlaveWanted, count: number): SlaveHandle[] {
    const got = chooseSlaves(this.connected().map(candidate), want, {
      policy: this.#policy,
      count,
    }).map((c) => c.handle);
    for (const s of got) s.picked();
    return got;
  }

  /** Why slave `name` may not serve `want` ("offline" when not connected), or null when it may. */
  refusal(want: SlaveWanted, name: string): string | null {
    const handle = this.#connected.get(name);
    if (handle === undefined) return "offline";
    const ranked = rankSlaves([candidate(handle)], want, this.#policy);
    return ranked.slaves[0]!.excluded;
  }

  /** Every known slave (connected or not) assessed for `want`, best first (SITE SLAVESELECT). */
  async rank(want: SlaveWanted): Promise<Ranking<Candidate>> {
    const known = new Map<string, Candidate>();
    for (const name of await this.known()) {
      known.set(name, {
        name,
        available: false,
        activeTransfers: 0,
        recentPicks: 0,
        freeBytes: 0,
        throughput: 0,
        lastPicked: 0,
      });
    }
    for (const h of this.#connected.values()) {
      const { handle: _, ...c } = candidate(h);
      known.set(h.name, c);
    }
    return rankSlaves([...known.values()], want, this.#policy);
  }

  /** Status of every known slave, connected or not, sorted by name. */
  async status(): Promise<SlaveStatus[]> {
    const out = new Map<string, SlaveStatus>();
    for await (const e of this.#kv.list<KnownSlave>({ prefix: ["slave"] })) {
      const name = String(e.key[1]);
      out.set(name, {
        name,
        state: "offline",
        remerging: false,
        unresponsive: false,
        address: e.value.address,
        free: 0,
        total: 0,
        activeTransfers: 0,
        lastSeen: e.value.lastSeen,
      });
    }
    for (const s of this.#connected.values()) {
      out.set(s.name, {
        name: s.name,
        state: s.state === "online" ? "online" : "remerging",
        remerging: s.remerging,
        unresponsive: s.unresponsive,
        address: s.address,
        free: s.disk.free,
        total: s.disk.total,
        activeTransfers: s.activeTransfers,
        lastSeen: s.lastHeard,
      });
    }
    return [...out.values()].sort((a, b) => a.name < b.name ? -1 : 1);
  }
}

function candidate(handle: SlaveHandle): Candidate & { handle: SlaveHandle } {
  return {
    name: handle.name,
    available: handle.available,
    ...(handle.available ? {} : { unavailable: unavailable(handle) }),
    activeTransfers: handle.activeTransfers,
    recentPicks: handle.recentPicks(),
    freeBytes: handle.disk.free,
    throughput: handle.throughput,
    lastPicked: handle.lastPicked,
    handle,
  };
}

/** Why a connected slave takes no transfers (for SITE SLAVESELECT). */
function unavailable(handle: SlaveHandle): string {
  if (handle.state === "remerging") return "remerging (not online yet)";
  if (handle.state === "gone") return "offline";
  if (handle.leaving) return "leaving";
  return handle.unresponsive ? "not responding" : "offline";
}
