/**
 * Slave selection: pure functions over what the registry knows.
 */

/** What selection needs to know about a slave. */
export interface Candidate {
  name: string;
  available: boolean;
  activeTransfers: number;
  freeBytes: number;
  lastPicked: number;
}

/** Slaves with less free space than this are not chosen for uploads. */
export const MIN_FREE_BYTES = 64 * 1024 * 1024;

/**
 * The slave for a new upload: fewest active transfers first, then most free space
 * (differences under 5% count as equal), then the one picked least recently.
 * Returns null when no available slave has room.
 */
export function pickForUpload<T extends Candidate>(slaves: readonly T[]): T | null {
  const ok = slaves.filter((s) => s.available && s.freeBytes >= MIN_FREE_BYTES);
  return best(ok, true);
}

/**
 * The slave for a download among the file's holders: fewest active transfers, then least
 * recently picked. Returns null when no holder is available.
 */
export function pickForDownload<T extends Candidate>(
  slaves: readonly T[],
  holders: readonly string[],
): T | null {
  const held = new Set(holders);
  return best(slaves.filter((s) => s.available && held.has(s.name)), false);
}

function best<T extends Candidate>(list: readonly T[], bySpace: boolean): T | null {
  let pick: T | null = null;
  for (const s of list) {
    if (pick === null || better(s, pick, bySpace)) pick = s;
  }
  return pick;
}

function better(a: Candidate, b: Candidate, bySpace: boolean): boolean {
  if (a.activeTransfers !== b.activeTransfers) return a.activeTransfers < b.activeTransfers;
  if (bySpace) {
    const max = Math.max(a.freeBytes, b.freeBytes, 1);
    if (Math.abs(a.freeBytes - b.freeBytes) / max > 0.05) return a.freeBytes > b.freeBytes;
  }
  if (a.lastPicked !== b.lastPicked) return a.lastPicked < b.lastPicked;
  return a.name < b.name;
}
