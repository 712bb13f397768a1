/**
 * The master↔slave link protocol: a closed, versioned set of typed messages.
 *
 * Every frame on the link is one JSON object (see `shared/link.ts` for framing).
 * Messages are a discriminated union on `type`. Anything that does not validate
 * here is a protocol violation and the receiver drops the link.
 *
 * Handshake (before any other message):
 *   master → slave  `hello`    {v, nonce}
 *   slave  → master `auth`     {v, name, nonce (slave's own), mac = HMAC-SHA256(secret, "slave:" + masterNonce + ":" + name)}
 *   master → slave  `welcome`  {mac = HMAC-SHA256(secret, "master:" + slaveNonce + ":" + name)}   (or `refused` {reason})
 * Then the slave sends `disk`; the master sends `tls_keys` (TLS only) and `remerge_request`; the
 * slave answers the request with `remerge` batches and `remerge_done`. The master may send more
 * `remerge_request`s (subtree rescans) after a `remerge_done`; each is answered the same way.
 *
 * Requests carry a numeric `id` chosen by the sender; the answer is a `reply`
 * or an `error` with the same id. Events have no id.
 */

/**
 * Protocol version spoken by this build (2: master-driven, possibly partial remerge; 3: adds
 * `set_mtime`). Master and slave must speak the same one.
 */
export const PROTOCOL_VERSION = 3;

/** Largest frame either side accepts, in bytes (JSON text). */
export const MAX_FRAME_BYTES = 1024 * 1024;

/** Most inventory entries in one `remerge` batch. */
export const MAX_REMERGE_BATCH = 1000;

/** Most subtree paths in one `remerge_request`. */
export const MAX_RESCAN_PATHS = 100;

/** Heartbeat interval and the silence after which a peer is declared gone. */
export const HEARTBEAT_MS = 5_000;
/** A peer silent for this long is gone. */
export const PEER_TIMEOUT_MS = 20_000;

/** One file in a slave's inventory. `path` is a normalised virtual path ("/a/b.bin"). */
export interface InventoryEntry {
  path: string;
  size: number;
  /** Modification time, ms since epoch. */
  mtime: number;
}

/** Where the slave's data connection goes for a transfer. */
export type DataEndpoint =
  /** Use the socket accepted on the port opened by an earlier `listen` with the same `xfer`. */
  | { kind: "passive" }
  /** Connect out to this address (PORT/EPRT target, or another server in FXP). */
  | { kind: "active"; host: string; port: number };

// ---------------------------------------------------------------- handshake

/** master → slave, first frame. */
export interface HelloMsg {
  type: "hello";
  v: number;
  nonce: string;
}
/** slave → master, answer to hello. */
export interface AuthMsg {
  type: "auth";
  v: number;
  name: string;
  nonce: string;
  mac: string;
}
/** master → slave, the slave is accepted; `mac` proves the master knows the secret too. */
export interface WelcomeMsg {
  type: "welcome";
  mac: string;
}
/** master → slave, the slave is refused; the link closes after this frame. */
export interface RefusedMsg {
  type: "refused";
  reason: string;
}

// ---------------------------------------------------------------- requests (master → slave)

/** Open a passive data port for transfer `xfer`; reply `{port}`. Only `peer` may connect (null = anyone, FXP). */
export interface ListenReq {
  type: "listen";
  id: number;
  xfer: string;
  peer: string | null;
}
/**
 * Move the bytes of one file. `dir: "send"` = slave reads the file and writes the data connection (RETR);
 * `"receive"` = slave reads the data connection and writes the file (STOR/APPE).
 * `offset`: REST position (send: start reading there; receive: truncate to it and write from it).
 * `append`: receive only; write at the current end of the file (APPE).
 * Reply (when the transfer ends): `TransferResult`.
 */
export interface TransferReq {
  type: "transfer";
  id: number;
  xfer: string;
  dir: "send" | "receive";
  path: string;
  offset: number;
  append: boolean;
  /** ASCII type: not converted on the slave, kept for logs. */
  ascii: boolean;
  endpoint: DataEndpoint;
  /** For active endpoints: the address we expect to reach; for passive: who may connect (null = anyone). */
  peer: string | null;
  /**
   * TLS on the data connection (PROT P): "server" = the slave is the TLS server (the normal
   * case, also for active connections it dials), "client" = the slave is the TLS client
   * (SSCN ON / CPSV, for secure FXP), "none" = plain.
   */
  tls: DataTls;
  /**
   * Send only: send this text instead of a file (a directory listing the master generated, for
   * a client whose PASV without PRET was answered by the only slave). `path` is then ignored.
   */
  text?: string;
}

/** Longest `text` a transfer request may carry, in characters. */
export const MAX_TRANSFER_TEXT = 700_000;

/** TLS role of the slave on a data connection. */
export type DataTls = "none" | "server" | "client";
/** Abort transfer `xfer` (a pending listen or a running transfer). Reply `{}`. */
export interface AbortReq {
  type: "abort";
  id: number;
  xfer: string;
}
/** Delete a file. Reply `{}`; a missing file is an error with code "not_found". Empty parents are pruned. */
export interface DeleteReq {
  type: "delete";
  id: number;
  path: string;
}
/** Rename a file or directory. Reply `{}`; "not_found" or "exists" errors. */
export interface RenameReq {
  type: "rename";
  id: number;
  from: string;
  to: string;
}
/** Remove a directory (recursively, it should only hold nothing the master still lists). Reply `{}`. */
export interface RmdirReq {
  type: "rmdir";
  id: number;
  path: string;
}
/** Set the modification time (ms since the epoch) of a file or directory. Reply `{}`; "not_found". */
export interface SetMtimeReq {
  type: "set_mtime";
  id: number;
  path: string;
  mtime: number;
}
/** Read a whole file and compute its CRC32. Reply `{crc32, size}`. */
export interface ChecksumReq {
  type: "checksum";
  id: number;
  path: string;
}

/**
 * master → slave, right after `welcome` and whenever they change: the secret from which
 * session-ticket keys are derived (base64 of 48 bytes), shared so a data connection on the slave
 * can resume the TLS session the client negotiated with the master.
 */
export interface TlsKeysMsg {
  type: "tls_keys";
  ticketSecret: string;
}

/**
 * master → slave, after `welcome` (and `tls_keys`): list your files now. The slave scans nothing
 * before it gets this (after 10 s without one it scans everything).
 *
 * `since` 0: a full remerge, every directory is listed. `since` > 0 (a partial remerge): the
 * slave-clock time (`remerge_done.scannedAt`) at which the scan of this slave's last completed
 * remerge started; the slave lists only the directories whose own mtime or ctime is at most
 * 2 s older than that, and still walks into every subdirectory to find changed ones deeper down.
 *
 * `paths`: scan only these subtrees (slave paths), every directory in them listed (`since` is 0
 * then). The master asks for them after a partial pass, for subdirectories it does not know the
 * slave holds anything under (new or moved-in directories whose own subdirectories may look
 * unchanged). Absent: the whole root.
 */
export interface RemergeRequestMsg {
  type: "remerge_request";
  since: number;
  paths?: string[];
}

/** All requests the master may send. */
export type SlaveRequest =
  | ListenReq
  | TransferReq
  | AbortReq
  | DeleteReq
  | RenameReq
  | RmdirReq
  | ChecksumReq
  | SetMtimeReq;

// ---------------------------------------------------------------- replies (slave → master)

/** The result of a finished transfer. */
export interface TransferResult {
  /** Bytes moved over the data connection. */
  bytes: number;
  /** Size of the file on disk after the transfer. */
  size: number;
  /**
   * CRC32 of the whole file (receive) or of the bytes sent (send), as unsigned integer; 0 with
   * `crcWhole` false when the slave's engine never saw the bytes (a zero-copy send).
   */
  crc32: number;
  /** Whether `crc32` covers the whole file (false for a REST/APPE receive where the earlier part was not read). */
  crcWhole: boolean;
  /** Wall time of the transfer, ms. */
  ms: number;
  /** File mtime after the transfer, ms since epoch. */
  mtime: number;
  /** TLS on the data connection, when there was TLS. */
  tls?: { protocol: string; resumed: boolean };
}

/** Successful answer to request `id`. */
export interface ReplyMsg {
  type: "reply";
  id: number;
  /** Request-specific payload: `{port, host}` for listen (host = the slave's public address), TransferResult for transfer, `{crc32,size}` for checksum, `{}` otherwise. */
  data: Record<string, unknown>;
}

/** Machine-readable reason of an error reply. */
export type ErrorCode =
  | "not_found"
  | "exists"
  | "not_a_file"
  | "outside_root"
  | "io"
  | "aborted"
  | "data_connection"
  | "no_port"
  | "timeout"
  | "bad_request";

/** Failed answer to request `id`. For a failed receive, `partial` carries what is on disk now. */
export interface ErrorMsg {
  type: "error";
  id: number;
  code: ErrorCode;
  message: string;
  partial?: { size: number; mtime: number; bytes: number };
}

// ---------------------------------------------------------------- events (both ways)

/** Heartbeat; either side sends it every HEARTBEAT_MS. */
export interface PingMsg {
  type: "ping";
  t: number;
}
/** slave → master: free and total bytes of the root's file system. */
export interface DiskMsg {
  type: "disk";
  free: number;
  total: number;
}
/** slave → master: a running transfer's progress (at most once a second). */
export interface ProgressMsg {
  type: "progress";
  xfer: string;
  bytes: number;
}
/**
 * A directory the slave listed (read completely): `subdirs` names its subdirectories, and every
 * file in it was sent in this or an earlier batch. A directory with many subdirectories is split
 * over several markers of the same `path`; only the last has `complete: true`. A directory's
 * marker comes before any entry or marker of its subdirectories.
 */
export interface ListedDir {
  path: string;
  subdirs: string[];
  complete: boolean;
}
/**
 * slave → master: one batch of the inventory: ≤ MAX_REMERGE_BATCH files, and the directories
 * (≤ MAX_REMERGE_BATCH markers of ≤ MAX_REMERGE_BATCH names each) the slave listed completely.
 */
export interface RemergeMsg {
  type: "remerge";
  entries: InventoryEntry[];
  dirs?: ListedDir[];
}
/**
 * slave → master: the answer to one `remerge_request` is complete: `files` entries were sent in
 * all; `scannedAt` is the slave's clock (ms) when the scan started (the next `since`).
 */
export interface RemergeDoneMsg {
  type: "remerge_done";
  files: number;
  scannedAt: number;
}

/** Every frame the master can receive. */
export type FromSlave =
  | AuthMsg
  | ReplyMsg
  | ErrorMsg
  | PingMsg
  | DiskMsg
  | ProgressMsg
  | RemergeMsg
  | RemergeDoneMsg;

/** Every frame the slave can receive. */
export type FromMaster =
  | HelloMsg
  | WelcomeMsg
  | RefusedMsg
  | TlsKeysMsg
  | RemergeRequestMsg
  | SlaveRequest
  | PingMsg;

// ---------------------------------------------------------------- validation

type Shape = Record<string, (v: unknown) => boolean>;

const isStr = (v: unknown) => typeof v === "string" && v.length <= 16_384;
const isNum = (v: unknown) => typeof v === "number" && Number.isFinite(v);
const isInt = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
const isBool = (v: unknown) => typeof v === "boolean";
const isStrOrNull = (v: unknown) => v === null || isStr(v);
const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isEndpoint = (v: unknown) =>
  isObj(v) &&
  (v.kind === "passive" ||
    (v.kind === "active" && isStr(v.host) && isInt(v.port) && (v.port as number) < 65536));
const isEntries = (v: unknown) =>
  Array.isArray(v) && v.length <= MAX_REMERGE_BATCH &&
  v.every((e) => isObj(e) && isStr(e.path) && isInt(e.size) && isNum(e.mtime));
/** A directory entry name: not empty, no "/" or NUL, not "." or "..". */
const isName = (v: unknown) =>
  typeof v === "string" && v.length > 0 && v.length <= 1024 && v !== "." && v !== ".." &&
  !v.includes("/") && !v.includes("\0");
const isDirs = (v: unknown) =>
  v === undefined ||
  (Array.isArray(v) && v.length <= MAX_REMERGE_BATCH &&
    v.every((d) =>
      isObj(d) && isStr(d.path) && isBool(d.complete) && Array.isArray(d.subdirs) &&
      d.subdirs.length <= MAX_REMERGE_BATCH && d.subdirs.every(isName) &&
      Object.keys(d).length === 3
    ));
const isPaths = (v: unknown) =>
  v === undefined || (Array.isArray(v) && v.length <= MAX_RESCAN_PATHS && v.every(isStr));
const isPartial = (v: unknown) =>
  v === undefined || (isObj(v) && isInt(v.size) && isNum(v.mtime) && isInt(v.bytes));
const ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  "not_found",
  "exists",
  "not_a_file",
  "outside_root",
  "io",
  "aborted",
  "data_connection",
  "no_port",
  "timeout",
  "bad_request",
]);

const SHAPES: Readonly<Record<string, Shape>> = {
  hello: { v: isInt, nonce: isStr },
  auth: { v: isInt, name: isStr, nonce: isStr, mac: isStr },
  welcome: { mac: isStr },
  refused: { reason: isStr },
  listen: { id: isInt, xfer: isStr, peer: isStrOrNull },
  transfer: {
    id: isInt,
    xfer: isStr,
    dir: (v) => v === "send" || v === "receive",
    path: isStr,
    offset: isInt,
    append: isBool,
    ascii: isBool,
    endpoint: isEndpoint,
    peer: isStrOrNull,
    tls: (v) => v === "none" || v === "server" || v === "client",
    text: (v) => v === undefined || (typeof v === "string" && v.length <= MAX_TRANSFER_TEXT),
  },
  tls_keys: { ticketSecret: isStr },
  remerge_request: { since: isInt, paths: isPaths },
  abort: { id: isInt, xfer: isStr },
  delete: { id: isInt, path: isStr },
  rename: { id: isInt, from: isStr, to: isStr },
  rmdir: { id: isInt, path: isStr },
  checksum: { id: isInt, path: isStr },
  set_mtime: { id: isInt, path: isStr, mtime: (v) => Number.isSafeInteger(v) },
  reply: { id: isInt, data: isObj },
  error: {
    id: isInt,
    code: (v) => typeof v === "string" && ERROR_CODES.has(v),
    message: isStr,
    partial: isPartial,
  },
  ping: { t: isNum },
  disk: { free: isInt, total: isInt },
  progress: { xfer: isStr, bytes: isInt },
  remerge: { entries: isEntries, dirs: isDirs },
  remerge_done: { files: isInt, scannedAt: isInt },
};

const FROM_SLAVE: ReadonlySet<string> = new Set([
  "auth",
  "reply",
  "error",
  "ping",
  "disk",
  "progress",
  "remerge",
  "remerge_done",
]);
const FROM_MASTER: ReadonlySet<string> = new Set([
  "hello",
  "tls_keys",
  "remerge_request",
  "welcome",
  "refused",
  "listen",
  "transfer",
  "abort",
  "delete",
  "rename",
  "rmdir",
  "checksum",
  "set_mtime",
  "ping",
]);

function check(v: unknown, allowed: ReadonlySet<string>): string | null {
  if (!isObj(v)) return "frame is not an object";
  const type = v.type;
  if (typeof type !== "string" || !allowed.has(type)) {
    return `unknown message type: "${String(type)}"`;
  }
  const shape = SHAPES[type]!;
  for (const [key, ok] of Object.entries(shape)) {
    if (!ok(v[key])) return `bad field "${key}" in "${type}" message`;
  }
  for (const key of Object.keys(v)) {
    if (key !== "type" && !(key in shape)) return `unknown field "${key}" in "${type}" message`;
  }
  return null;
}

/** Validates a decoded frame received by the master. Throws `TypeError` naming what is wrong. */
export function parseFromSlave(v: unknown): FromSlave {
  const problem = check(v, FROM_SLAVE);
  if (problem) throw new TypeError(`Invalid message from slave: ${problem}`);
  return v as FromSlave;
}

/** Validates a decoded frame received by the slave. Throws `TypeError` naming what is wrong. */
export function parseFromMaster(v: unknown): FromMaster {
  const problem = check(v, FROM_MASTER);
  if (problem) throw new TypeError(`Invalid message from master: ${problem}`);
  return v as FromMaster;
}
