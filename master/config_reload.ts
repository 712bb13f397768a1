/**
 * Config reload (SIGHUP, `SITE RELOAD`): re-reads master.toml and applies its reloadable parts,
 * `[[replication]]` and the copy settings of `[slaves]` (`copies_per_slave`, `[slaves.copies]`,
 * `copies_while_busy`, `heal_after`); replication is then re-evaluated for every file the online
 * slaves hold. Anything else that changed is named as needing a restart. A file that does not
 * load or validate changes nothing (the error is thrown to the caller).
 *
 * @module
 */
import type { MasterConfig } from "../shared/config_types.ts";
import { loadMasterConfig } from "../shared/config.ts";
import { replicationSettings, type Replicator } from "./slaves/replication.ts";

/** The `[slaves]` keys a reload applies. */
const RELOADABLE_SLAVE_KEYS = [
  "copies_per_slave",
  "copies",
  "copies_while_busy",
  "heal_after",
] as const;

/** What a reload changes: the running config and the replicator. */
export interface Reloadable {
  config: MasterConfig;
  replication?: Replicator;
}

/** What a reload did. */
export interface ReloadResult {
  /** Reloadable settings that changed ("replication", "slaves.copies_per_slave"…). */
  applied: string[];
  /** Settings that changed in the file but apply only after a restart. */
  restart: string[];
}

/**
 * Reloads `target.config.file` (see the module documentation) and returns what changed. `loaded`
 * is the config as last read from the file (the running one may differ where the master adjusted
 * it); the caller keeps the returned `loaded` (with what was applied) for the next reload. Throws
 * when the file is bad.
 */
export async function reloadMasterConfig(
  target: Reloadable,
  loaded: MasterConfig,
): Promise<ReloadResult & { loaded: MasterConfig }> {
  if (target.config.file === null) {
    throw new TypeError("The master runs without a config file: nothing to reload");
  }
  const next = await loadMasterConfig(target.config.file);
  const applied: string[] = [];
  const restart: string[] = [];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(next.replication, loaded.replication)) applied.push("replication");
  for (const section of Object.keys(next) as (keyof MasterConfig)[]) {
    if (section === "replication" || section === "file") continue;
    const a: unknown = next[section];
    const b: unknown = loaded[section];
    if (!isTable(a) || !isTable(b)) {
      if (!same(a, b)) restart.push(section);
      continue;
    }
    for (const key of Object.keys(a)) {
      if (same(a[key], b[key])) continue;
      const reloadable = section === "slaves" &&
        (RELOADABLE_SLAVE_KEYS as readonly string[]).includes(key);
      (reloadable ? applied : restart).push(`${section}.${key}`);
    }
  }
  const withReloadable = (config: MasterConfig): MasterConfig => {
    const slaves = { ...config.slaves };
    for (const key of RELOADABLE_SLAVE_KEYS) Object.assign(slaves, { [key]: next.slaves[key] });
    return { ...config, replication: next.replication, slaves };
  };
  target.config = withReloadable(target.config);
  await target.replication?.reconfigure(replicationSettings(target.config));
  // What was not applied stays different from the file, so the next reload names it again.
  return { applied, restart, loaded: withReloadable(loaded) };
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
