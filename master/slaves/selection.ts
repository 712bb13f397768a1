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

/** No slave can serve a transfer right now (none holds the file, or none has room). */
export class NoSlaveError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "NoSlaveError";
  }
}

/** What a transfer needs from the slave that will serve it. */
export interface SlaveWanted {
  kind: "download" | "upload";
  /** The file's virtual path (for the error text). */
  path: string;
  /** The slaves the filelist records as holding the file (none for a new file). */
  holders: readonly string[];
  /** An upload that continues the file on disk (APPE, or REST before STOR). */
  resuming: boolean;
}

/**
 * The one slave choice for a transfer. A download goes to the least busy available holder. An
 * upload over an existing file prefers an available holder; a resumed one must go to a holder;
 * a new file goes where {@link pickForUpload} says. Throws NoSlaveError naming why none fits.
 */
export function chooseSlave<T extends Candidate>(slaves: readonly T[], want: SlaveWanted): T {
  const { kind, path, holders } = want;
  if (kind === "download" || holders.length > 0) {
    const holder = pickForDownload(slaves, holders);
    if (holder) return holder;
    if (kind === "download" || want.resuming) {
      throw new NoSlaveError(
        holders.length === 0
          ? `${path} is not available: no slave holds it`
          : `${path} is not available: its slave${holders.length > 1 ? "s" : ""} (${
            holders.join(", ")
          }) ${holders.length > 1 ? "are" : "is"} offline`,
      );
    }
  }
  const slave = pickForUpload(slaves);
  if (!slave) throw new NoSlaveError("No slave is online with free space for uploads");
  return slave;
}
