/**
 * Sibling streaming: slave B, whose passive port a client was given (PASV without PRET), serves
 * that client a file B does not hold. B fetches the bytes from a holder, slave A, over the
 * slave-to-slave primitive (`copy.ts`: B listens for A, A connects and sends) and streams them to
 * the client as they arrive. The master moves no file bytes; it only orders:
 *
 * 1. `B.request("listen", {xfer: h, peer: A.address})`: a single-use port for A (h is a fresh
 *    id, not the client's transfer id).
 * 2. `B.request("transfer", {...the client's send, source: {xfer: h, peer, tls, size, crc32,
 *    keep}})`: B takes the client's data connection as for any send, accepts A on the port of
 *    `h`, and relays A's bytes to the client, reading A no faster than the client drains. B
 *    checks that exactly `size - offset` bytes came, and from offset 0 that their CRC32 is the
 *    file's: otherwise it fails ("data_connection" when A's connection ended early, "mismatch"),
 *    so the client gets 426, never 226. With `keep` B also writes the bytes under the copy
 *    temporary name and renames them into place when they match.
 * 3. `A.request("transfer", {xfer: h, dir: "send", offset, endpoint: {active, B's port}})`: A sends
 *    from the client's REST offset; with TLS between slaves B is the TLS server and A the client.
 *
 * Any failure aborts both (the client's transfer on B, B's listener for A, A's send), and the
 * call settles only once B's transfer has (a kept copy's temporary file is gone by then); an ABOR
 * of the client's transfer on B drops A's connection, so A's send fails and is aborted too. A
 * kept copy is recorded as B's holding (`copy.ts#recordCopy`).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { RequestBody, TransferResult } from "../../shared/protocol.ts";
import type { FileEntry, Filelist } from "../filelist/types.ts";
import { recordCopy } from "./copy.ts";
import type { SlaveRegistry } from "./registry.ts";
import type { Replicator } from "./replication.ts";
import type { SlaveHandle } from "./slave_handle.ts";

const log = getLogger(["drftpd", "master", "sibling"]);

/** The send B would make for the client (what `transfers.ts` sends to a slave that holds the file). */
export type ClientSend = Omit<RequestBody<"transfer">, "source" | "text" | "verify"> & {
  dir: "send";
};

/** Where B gets the bytes and what to do with them. */
export interface SiblingOrder {
  /** A, the holder that sends (see `pickHolder`). */
  from: SlaveHandle;
  /** The file as the filelist records it: B checks its size and, from offset 0, its CRC32. */
  file: FileEntry;
  /** TLS between the slaves (the master's `[slaves] tls`). */
  tls: boolean;
  /**
   * Keep the bytes on B as a copy and record B as a holder (see `keepWanted`); ignored for a
   * REST offset or a file whose CRC32 is not known.
   */
  keep: boolean;
  /** Where a kept copy is recorded. */
  filelist: Filelist;
}

/**
 * The holder A for a sibling send to B: the least busy online holder other than B (the
 * registry's choice). Throws NoSlaveError when none is online.
 */
export function pickHolder(
  registry: SlaveRegistry,
  b: SlaveHandle,
  file: FileEntry & { path: string },
): SlaveHandle {
  const holders = file.slaves.filter((n) => n !== b.name);
  return registry.choose({ kind: "download", path: file.path, holders, resuming: false });
}

/**
 * Whether a sibling send of `path` from `offset` to B (`options.to`) should keep its bytes on B:
 * a `[[replication]]` rule wants more copies of it than it has online holders, the whole file
 * with a known CRC32 is sent, and `[selection]` lets B take a copy of it (path rules,
 * `max_transfers`) with `min_free` bytes still free once the copy is written.
 */
export function keepWanted(
  path: string,
  file: FileEntry,
  options: {
    offset: number;
    replication: Replicator | undefined;
    registry: SlaveRegistry;
    to: SlaveHandle;
  },
): boolean {
  const { offset, replication, registry, to } = options;
  if (offset !== 0 || file.crc32 === null || replication === undefined) return false;
  const want = replication.wanted(path);
  if (want === null) return false;
  const online = file.slaves.filter((n) => registry.get(n)?.available).length;
  if (online >= want) return false;
  if (registry.refusal({ kind: "copy", path, holders: file.slaves }, to.name) !== null) {
    return false;
  }
  return to.disk.free - file.size >= registry.policy.minFree;
}

/**
 * Serves the client's `send` from B (`to`) with the bytes of holder `order.from` (see the module
 * documentation). Resolves with B's result (bytes sent to the client, their CRC32, TLS, `kept`);
 * rejects with the first failure (`SlaveReplyError`, `SlaveGoneError`) after aborting both
 * sides, once B's transfer has ended. Progress events arrive on the client's `xfer` on B, as for any send.
 */
export async function sendViaSibling(
  to: SlaveHandle,
  send: ClientSend,
  order: SiblingOrder,
): Promise<TransferResult> {
  const { from, file, tls } = order;
  if (from === to) throw new RangeError(`Cannot stream "${send.path}" from ${to.name} to itself`);
  const keep = order.keep && send.offset === 0 && file.crc32 !== null;
  const hx = crypto.randomUUID();
  const abortAll = () => {
    to.request("abort", { xfer: send.xfer }).catch(() => {});
    to.request("abort", { xfer: hx }).catch(() => {});
    from.request("abort", { xfer: hx }).catch(() => {});
  };
  try {
    const { host, port } = await to.request("listen", { xfer: hx, peer: from.address });
    const sending = to.request("transfer", {
      ...send,
      source: {
        xfer: hx,
        peer: from.address,
        tls: tls ? "server" : "none",
        size: file.size,
        crc32: file.crc32,
        keep,
      },
    });
    const fetching = from.request("transfer", {
      xfer: hx,
      dir: "send",
      path: send.path,
      offset: send.offset,
      append: false,
      ascii: send.ascii,
      endpoint: { kind: "active", host, port },
      peer: host,
      tls: tls ? "client" : "none",
    });
    // A is busy until its send settles, which may be after the first failure rejected this call.
    from.activeTransfers++;
    fetching.finally(() => from.activeTransfers--).catch(() => {});
    // The first failure aborts the other side, so neither waits for its timeout.
    sending.catch(abortAll);
    fetching.catch(abortAll);
    let sent: TransferResult;
    try {
      [sent] = await Promise.all([sending, fetching]);
    } catch (e) {
      // The first failure; the client's transfer on B ends (aborted) and cleans up before the
      // caller replies, so nothing of it is left when the client reads 426.
      await sending.catch(() => {});
      throw e;
    }
    if (sent.kept) {
      await recordCopy(order.filelist, send.path, { entry: file, to }).then(
        () =>
          log.info("Kept {path} on {to} (streamed from {from})", {
            path: send.path,
            to: to.name,
            from: from.name,
          }),
        (e) =>
          log.warn("Copy of {path} on {to} not recorded: {error}", {
            path: send.path,
            to: to.name,
            error: String(e),
          }),
      );
    }
    return sent;
  } catch (e) {
    abortAll();
    throw e;
  }
}
