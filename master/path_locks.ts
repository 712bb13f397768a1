/**
 * Orders transfers and namespace changes on the same virtual path, master-wide. Without it a
 * DELE during an overwriting STOR answered 250 and the STOR then 226 for a file that was gone;
 * two STORs of one name both got 226 and left an untracked copy; an RNTO of the folder during an
 * upload left the file on disk and unlisted.
 *
 * - A transfer holds its path from before `150` until after its `226`/`4xx` (`transfer`): an
 *   upload excludes any other transfer of the path, a download excludes uploads.
 * - A namespace change (DELE, RNFR/RNTO, RMD, MKD) holds its paths while it runs (`change`)
 *   and is refused while a transfer runs on one of them or under one of them; a transfer is
 *   refused while a change holds its path or a folder above it.
 * Refusals throw {@link PathBusyError} (FTP `450`). Nothing waits: the client retries.
 *
 * All state lives in one instance the master creates; the checks and the bookkeeping are
 * synchronous, so no other command can slip between them.
 *
 * @module
 */

/** The path (or one under it) is in use: retry later. */
export class PathBusyError extends Error {
  /** Creates the error naming the path and what holds it. */
  constructor(path: string, by: "transfer" | "change") {
    super(
      by === "transfer"
        ? `${path} is in use by a transfer; try again when it is done`
        : `${path} is being changed by another command; try again`,
    );
    this.name = "PathBusyError";
  }
}

/** True when `inner` is `outer` or lies under it (both normalised virtual paths). */
function within(inner: string, outer: string): boolean {
  return inner === outer || outer === "/" || inner.startsWith(outer + "/");
}

/** The per-path lock table. */
export class PathLocks {
  /** path → running transfers on it (uploads and downloads). */
  #transfers = new Map<string, { uploads: number; downloads: number }>();
  /** paths held by namespace changes in progress (with a count, several may share one). */
  #changes = new Map<string, number>();

  /**
   * Registers a transfer of `path`; dispose the result when its final reply is sent.
   * Throws PathBusyError when a conflicting transfer or a change holds the path.
   */
  transfer(path: string, kind: "upload" | "download"): Disposable {
    for (const held of this.#changes.keys()) {
      if (within(path, held)) throw new PathBusyError(held, "change");
    }
    const t = this.#transfers.get(path) ?? { uploads: 0, downloads: 0 };
    if (t.uploads > 0 || (kind === "upload" && t.downloads > 0)) {
      throw new PathBusyError(path, "transfer");
    }
    if (kind === "upload") t.uploads++;
    else t.downloads++;
    this.#transfers.set(path, t);
    let released = false;
    return {
      [Symbol.dispose]: () => {
        if (released) return;
        released = true;
        if (kind === "upload") t.uploads--;
        else t.downloads--;
        if (t.uploads === 0 && t.downloads === 0) this.#transfers.delete(path);
      },
    };
  }

  /**
   * Holds `paths` for a namespace change; dispose the result when the change is done. Throws
   * PathBusyError when a transfer runs on one of them or under one of them.
   */
  change(...paths: string[]): Disposable {
    for (const p of paths) this.check(p);
    for (const p of paths) this.#changes.set(p, (this.#changes.get(p) ?? 0) + 1);
    let released = false;
    return {
      [Symbol.dispose]: () => {
        if (released) return;
        released = true;
        for (const p of paths) {
          const n = (this.#changes.get(p) ?? 1) - 1;
          if (n === 0) this.#changes.delete(p);
          else this.#changes.set(p, n);
        }
      },
    };
  }

  /** Throws PathBusyError when a transfer runs on `path` or under it. */
  check(path: string): void {
    for (const busy of this.#transfers.keys()) {
      if (within(busy, path)) throw new PathBusyError(path, "transfer");
    }
  }
}
