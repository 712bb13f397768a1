/**
 * Slave-to-slave copies: the master orders them, the slaves move the bytes (the master moves
 * none). `copyBetweenSlaves` is the primitive; `copyToSlave` also checks the filelist and records
 * the new holder.
 *
 * The primitive, step by step:
 * 1. `to.request("listen", {xfer, peer: from.address})`: B opens a single-use port that accepts
 *    only A's address, and answers its public host and port.
 * 2. `to.request("transfer", {dir: "receive", endpoint: passive, tls: "server"|"none",
 *    verify: {size, crc32}})`: B waits for A on that port and writes what arrives under a
 *    temporary name in the target folder (`slave/storage.ts#copyTempPath`, never inventoried);
 *    only bytes of exactly the expected size and CRC32 are renamed into place, else B removes
 *    them and fails with "mismatch".
 * 3. `from.request("transfer", {dir: "send", endpoint: {active, host, port}, tls: "client"|"none"})`:
 *    A connects to B and sends the file (from `offset`, for a range). With TLS, B is the TLS
 *    server and A the client, as on a client's PROT P connection.
 * Either side failing aborts the other.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { TransferResult } from "../../shared/protocol.ts";
import type { FileEntry, Filelist } from "../filelist/types.ts";
import type { SlaveRegistry } from "./registry.ts";
import { type SlaveHandle, SlaveReplyError } from "./slave_handle.ts";

const log = getLogger(["drftpd", "master", "copy"]);

/** One copy of a file from slave A (`from`) to slave B (`to`). */
export interface CopyOrder {
  /** Virtual path of the file (the same on both slaves). */
  path: string;
  /** The size and CRC32 the bytes must have on arrival (what the filelist records). */
  size: number;
  crc32: number;
  from: SlaveHandle;
  to: SlaveHandle;
  /** TLS on the data connection between the slaves (use it when the link uses TLS). */
  tls: boolean;
  /** Called with the bytes B has received so far, as its progress reports arrive. */
  onProgress?: (bytes: number) => void;
  /**
   * A copy id: B keeps what arrived when the copy fails or ends short (`verify.keep`), and a
   * later order with the same id continues it from `offset`.
   */
  keep?: string;
  /** Where a kept copy continues (at most what B kept). Default 0. */
  offset?: number;
}

/** A copy with `keep` failed, and B kept `kept` bytes a later copy may continue from. */
export class CopyInterruptedError extends Error {
  /** Bytes B kept. */
  readonly kept: number;
  /** Creates the error from the first side's error. */
  constructor(cause: unknown, kept: number) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = "CopyInterruptedError";
    this.kept = kept;
  }
}

/**
 * Copies `order.path` from `order.from` to `order.to` (see the module documentation). Resolves
 * with B's result (bytes, size, CRC32, time); rejects with the first side's error
 * (`SlaveReplyError` with code "mismatch" when the bytes did not match, or `SlaveGoneError`).
 */
export async function copyBetweenSlaves(order: CopyOrder): Promise<TransferResult> {
  const { path, from, to, tls } = order;
  if (from === to) throw new RangeError(`Cannot copy "${path}" from ${from.name} to itself`);
  const xfer = crypto.randomUUID();
  const { host, port } = await to.request("listen", { xfer, peer: from.address });
  using _progress = order.onProgress
    ? { [Symbol.dispose]: to.onProgress(xfer, order.onProgress) }
    : null;
  const receiving = to.request("transfer", {
    xfer,
    dir: "receive",
    path,
    offset: order.offset ?? 0,
    append: false,
    ascii: false,
    endpoint: { kind: "passive" },
    peer: from.address,
    tls: tls ? "server" : "none",
    verify: {
      size: order.size,
      crc32: order.crc32,
      ...(order.keep === undefined ? {} : { keep: order.keep }),
    },
  });
  const sending = from.request("transfer", {
    xfer,
    dir: "send",
    path,
    offset: order.offset ?? 0,
    append: false,
    ascii: false,
    endpoint: { kind: "active", host, port },
    peer: host,
    tls: tls ? "client" : "none",
  });
  // The first failure aborts the other side, so neither waits for its timeout.
  const abortBoth = () => {
    to.request("abort", { xfer }).catch(() => {});
    from.request("abort", { xfer }).catch(() => {});
  };
  let first: unknown = null;
  const failed = (e: unknown) => {
    first ??= e;
    abortBoth();
  };
  receiving.catch(failed);
  sending.catch(failed);
  try {
    const [received] = await Promise.all([receiving, sending]);
    return received;
  } catch {
    // B's own answer says what it kept (it answers the abort at the latest).
    const got = await receiving.then(() => null, (e: unknown) => e);
    const kept = got instanceof SlaveReplyError && got.code !== "mismatch"
      ? got.partial?.size ?? 0
      : 0;
    throw order.keep !== undefined && kept > 0 ? new CopyInterruptedError(first, kept) : first;
  }
}

/**
 * Records `to` as a holder of `path` once a copy of `entry` landed there, unless the file was
 * overwritten or deleted meanwhile: then the copy, of a file that is gone, is deleted again and
 * CopyRefusedError thrown.
 */
export async function recordCopy(
  filelist: Filelist,
  path: string,
  copy: { entry: FileEntry; to: SlaveHandle },
): Promise<void> {
  const { entry, to } = copy;
  const now = await filelist.get(path);
  if (now === null || now.kind !== "file" || now.size !== entry.size || now.mtime !== entry.mtime) {
    await to.request("delete", { path }).catch(() => {});
    throw new CopyRefusedError(`${path} changed while it was copied to ${to.name}`);
  }
  await filelist.addHolder(path, to.name);
}

/** Sources a copy tries (it resumes from the next holder when one fails). */
const MAX_COPY_ATTEMPTS = 3;

/** What `copyToSlave` needs. */
export interface CopyDeps {
  filelist: Filelist;
  registry: SlaveRegistry;
  /** TLS between slaves (the master's `[slaves] tls`). */
  tls: boolean;
}

/** A copy that was made. */
export interface CopyDone {
  path: string;
  from: string;
  to: string;
  bytes: number;
  ms: number;
}

/** Why a copy was not made (for replies and logs). */
export class CopyRefusedError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "CopyRefusedError";
  }
}

/** Choices for one {@link copyToSlave}. */
export interface CopyOptions {
  /** The holder to copy from (default: the first online holder). */
  from?: string;
  /** Called once the copy's size is known, and with the bytes received so far. */
  onProgress?: (bytes: number, size: number) => void;
}

/**
 * Copies file `path` to slave `target` from the holder `[selection]` picks (NoSlaveError when
 * none can send), then records `target` as
 * a holder, unless the file changed meanwhile (then the new copy is deleted again). A file whose
 * CRC32 is not known yet has it computed by the source first.
 */
export async function copyToSlave(
  deps: CopyDeps,
  path: string,
  target: string,
  options: CopyOptions = {},
): Promise<CopyDone> {
  const entry = await deps.filelist.get(path);
  if (entry === null || entry.kind !== "file") throw new CopyRefusedError(`No such file: ${path}`);
  const to = deps.registry.get(target);
  if (to === undefined || !to.available) {
    throw new CopyRefusedError(`Slave ${target} is not online`);
  }
  if (entry.slaves.includes(target)) throw new CopyRefusedError(`${target} already holds ${path}`);
  // `[selection]` decides here as for every other choice: the target must be allowed to take
  // the file (path rules, min_free, max_transfers), the source is the least busy holder (or the
  // one the caller names, when it is an online holder).
  const want = { kind: "copy", path, holders: entry.slaves } as const;
  const why = deps.registry.refusal(want, target);
  if (why !== null) throw new CopyRefusedError(`Slave ${target} may not take ${path}: ${why}`);
  const named = options.from === undefined ? undefined : deps.registry.get(options.from);
  const from = named?.available && entry.slaves.includes(named.name)
    ? named
    : deps.registry.choose({ ...want, kind: "download" });
  let crc32 = entry.crc32;
  if (crc32 === null) {
    const sum = await from.request("checksum", { path });
    if (sum.size !== entry.size) {
      throw new CopyRefusedError(
        `${from.name} has ${sum.size} bytes of ${path}, not ${entry.size}`,
      );
    }
    crc32 = sum.crc32;
  }
  const onProgress = options.onProgress;
  onProgress?.(0, entry.size);
  // A copy whose source fails resumes from another holder at the bytes B kept (range copy).
  const keep = crypto.randomUUID();
  const tried = new Set<string>();
  let source = from;
  let offset = 0;
  let result: TransferResult;
  for (let attempt = 1;; attempt++) {
    const sending = source;
    sending.activeTransfers++;
    to.activeTransfers++;
    sending.copies++;
    to.copies++;
    try {
      result = await copyBetweenSlaves({
        path,
        size: entry.size,
        crc32,
        from: sending,
        to,
        tls: deps.tls,
        keep,
        offset,
        ...(onProgress
          ? { onProgress: (bytes: number) => onProgress(offset + bytes, entry.size) }
          : {}),
      });
      break;
    } catch (e) {
      tried.add(sending.name);
      const next = e instanceof CopyInterruptedError && attempt < MAX_COPY_ATTEMPTS && to.available
        ? deps.registry.connected().find((s) =>
          s.available && entry.slaves.includes(s.name) && !tried.has(s.name)
        )
        : undefined;
      if (next === undefined) {
        // Nothing continues it: B drops what it kept (a mismatch left nothing).
        await to.request("abort", { xfer: keep }).catch(() => {});
        throw e instanceof CopyInterruptedError ? e.cause : e;
      }
      offset = (e as CopyInterruptedError).kept;
      log.info("Copy of {path} to {to} resumes from {from} at byte {offset}: {error}", {
        path,
        to: target,
        from: next.name,
        offset,
        error: String(e),
      });
      source = next;
    } finally {
      sending.activeTransfers--;
      to.activeTransfers--;
      sending.copies--;
      to.copies--;
    }
  }
  await recordCopy(deps.filelist, path, { entry, to });
  log.info("Copied {path} from {from} to {to}: {bytes} bytes in {ms} ms", {
    path,
    from: source.name,
    to: target,
    bytes: result.bytes,
    ms: result.ms,
  });
  return { path, from: source.name, to: target, bytes: result.bytes, ms: result.ms };
}
