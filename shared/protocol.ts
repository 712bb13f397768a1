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
import {
  anyOf,
  arrayOf,
  badField,
  bool,
  type Check,
  type Fields,
  type Guarded,
  type Infer,
  int,
  isObject,
  nullable,
  num,
  object,
  oneOf,
  optional,
  port,
  type Simplify,
  str,
  uint,
  uint32,
} from "./_schema.ts";

/**
 * Protocol version spoken by this build (2: master-driven, possibly partial remerge; 3: adds
 * `set_mtime`; 4: `transfer.verify` for slave-to-slave copies, the "mismatch" error; 5: adds
 * `leaving`; 6: the "stopping" error, a slave's refusal of new transfers while it stops; 7:
 * `transfer.source`, a send of a file another slave holds, and `kept` in its result; 8:
 * `verify.keep`, copies that resume from the bytes already received). Master and slave must speak
 * the same one.
 */
export const PROTOCOL_VERSION = 8;

/** Largest frame either side accepts, in bytes (JSON text). */
export const MAX_FRAME_BYTES = 1024 * 1024;

/** Most inventory entries in one `remerge` batch. */
export const MAX_REMERGE_BATCH = 1000;

/** Most subtree paths in one `remerge_request`. */
export const MAX_RESCAN_PATHS = 100;

/**
 * Heartbeat interval: each side sends a `ping` this often, so the master can tell within a few
 * seconds that a slave stopped answering (`[slaves] unresponsive_after`).
 */
export const HEARTBEAT_MS = 1_000;
/** A master silent for this long is gone (the slave's side; the master's is `[slaves] drop_after`). */
export const PEER_TIMEOUT_MS = 20_000;

/** Longest `text` a transfer request may carry, in characters. */
export const MAX_TRANSFER_TEXT = 700_000;

// ---------------------------------------------------------------- field shapes

/** A directory entry name: not empty, no "/" or NUL, not "." or "..". */
const name: Check<string> = (v): v is string =>
  typeof v === "string" && v.length > 0 && v.length <= 1024 && v !== "." && v !== ".." &&
  !v.includes("/") && !v.includes("\0");

const inventoryEntry = object({
  /** Normalised virtual path ("/a/b.bin"). */
  path: str(),
  size: uint,
  /** Modification time, ms since epoch. */
  mtime: num,
});

const listedDir = object({
  path: str(),
  subdirs: arrayOf(name, MAX_REMERGE_BATCH),
  complete: bool,
});

const dataEndpoint = anyOf(
  /** Use the socket accepted on the port opened by an earlier `listen` with the same `xfer`. */
  object({ kind: oneOf("passive") }),
  /** Connect out to this address (PORT/EPRT target, or another server in FXP). */
  object({ kind: oneOf("active"), host: str(), port: uint }),
);

/**
 * TLS role of the slave on a data connection: "server" = the slave is the TLS server (the
 * normal case, also for active connections it dials), "client" = the slave is the TLS client
 * (SSCN ON / CPSV, for secure FXP), "none" = plain.
 */
const dataTls = oneOf("none", "server", "client");

/**
 * Where a sibling send (`transfer.source`) gets its bytes: another slave, the holder A, connects
 * to the port this slave opened with `listen{xfer, peer}` and sends the file from the transfer's
 * `offset`; this slave streams what arrives to its own data connection as it arrives.
 */
const siblingSource = object({
  /** The `xfer` of the `listen` this slave opened for the holder (not the transfer's own). */
  xfer: str(),
  /** The holder's address: the only one that may connect to that port. */
  peer: str(),
  /** TLS on the holder's connection: "server" = this slave is the TLS server, A the client. */
  tls: oneOf("none", "server"),
  /** Size of the whole file (the filelist's): exactly `size - offset` bytes must arrive. */
  size: uint,
  /** CRC32 of the whole file, or null when the filelist does not know it. */
  crc32: nullable(uint32),
  /**
   * Keep the bytes as this slave's copy of the file: write them under the copy temporary name
   * too and rename them into place when size and CRC32 match (the result says `kept`). Needs
   * `offset` 0 and a known `crc32`.
   */
  keep: bool,
});

/** The result of a finished transfer (the reply to `transfer`). */
const transferResult = {
  /** Bytes moved over the data connection. */
  bytes: uint,
  /** Size of the file on disk after the transfer. */
  size: uint,
  /**
   * CRC32 of the whole file (receive) or of the bytes relayed from a holder (a sibling send), as
   * unsigned integer; 0 with `crcWhole` false for a send from the slave's own disk (no data
   * engine computes it: see `slave/data_engine.ts`). Masters ignore it for sends.
   */
  crc32: uint32,
  /** Whether `crc32` covers the whole file (false for a REST/APPE receive where the earlier part was not read). */
  crcWhole: bool,
  /** Wall time of the transfer, ms. */
  ms: uint,
  /** File mtime after the transfer, ms since epoch. */
  mtime: int,
  /** TLS on the data connection, when there was TLS. */
  tls: optional(object({ protocol: str(), resumed: bool })),
  /** A sibling send with `keep`: true when the copy was renamed into place on this slave. */
  kept: optional(bool),
} as const;

// ---------------------------------------------------------------- requests (master → slave)

/**
 * Every request the master may send: its body (the frame adds `type` and `id`) and the shape of
 * the `reply` that answers it. Anything else answers with an `error` frame.
 */
export const REQUESTS = {
  /**
   * Open a passive data port for transfer `xfer`. Only `peer` may connect (null = anyone, FXP).
   * Reply: the port, and the slave's public address to announce.
   */
  listen: {
    body: { xfer: str(), peer: nullable(str()) },
    reply: { port, host: str() },
  },
  /**
   * Move the bytes of one file. `dir: "send"` = slave reads the file and writes the data connection (RETR);
   * `"receive"` = slave reads the data connection and writes the file (STOR/APPE).
   * Reply (when the transfer ends): the transfer result.
   */
  transfer: {
    body: {
      xfer: str(),
      dir: oneOf("send", "receive"),
      path: str(),
      /** REST position (send: start reading there; receive: truncate to it and write from it). */
      offset: uint,
      /** Receive only; write at the current end of the file (APPE). */
      append: bool,
      /** ASCII type: not converted on the slave, kept for logs. */
      ascii: bool,
      endpoint: dataEndpoint,
      /** For active endpoints: the address we expect to reach; for passive: who may connect (null = anyone). */
      peer: nullable(str()),
      tls: dataTls,
      /**
       * Send only: send this text instead of a file (a directory listing the master generated, for
       * a client whose PASV without PRET was answered by the only slave). `path` is then ignored.
       */
      text: optional(str(MAX_TRANSFER_TEXT)),
      /**
       * Receive only, for a copy from another slave: write under a temporary name in the target
       * folder, and only when the bytes received have exactly this size and CRC32 rename it into
       * place (else remove it and fail with "mismatch"). No `append`. With `keep` (a copy id:
       * letters, digits, "-"), the temporary name is made from it, and a copy that ends short or
       * fails keeps what arrived (while the link lasts) and reports its size in `partial`: a
       * later copy with the same `keep` and `offset` = that size (or less) continues it, and the
       * whole file's CRC32 is checked; `abort{xfer: keep}` deletes it. Without `keep`, `offset`
       * must be 0.
       */
      verify: optional(object({ size: uint, crc32: uint32, keep: optional(str(64)) })),
      /**
       * Send only, for a file this slave does not hold (a client's PASV answered by this slave,
       * the file held by another): the bytes come from the holder as `siblingSource` describes
       * and go to the data connection as they arrive, read no faster than it drains. Fails with
       * "mismatch" when they are not the file's size (or, from offset 0, its CRC32), with
       * "data_connection" when the holder's connection ends early. `path` names the file (for
       * logs, and for the kept copy).
       */
      source: optional(siblingSource),
    },
    reply: transferResult,
  },
  /** Abort transfer `xfer` (a pending listen or a running transfer). */
  abort: { body: { xfer: str() }, reply: {} },
  /** Delete a file; a missing file is an error with code "not_found". Empty parents are pruned. */
  delete: { body: { path: str() }, reply: {} },
  /** Rename a file or directory; "not_found" or "exists" errors. */
  rename: { body: { from: str(), to: str() }, reply: {} },
  /** Remove a directory (recursively, it should only hold nothing the master still lists). */
  rmdir: { body: { path: str() }, reply: {} },
  /** Read a whole file and compute its CRC32. */
  checksum: { body: { path: str() }, reply: { crc32: uint32, size: uint } },
  /** Set the modification time (ms since the epoch) of a file or directory; "not_found". */
  set_mtime: { body: { path: str(), mtime: int }, reply: {} },
} as const satisfies Readonly<Record<string, { body: Fields; reply: Fields }>>;

/** The kind (`type`) of a request. */
export type RequestKind = keyof typeof REQUESTS;

/** A request as callers write it: its body without `type` and `id`. */
export type RequestBody<K extends RequestKind> = Infer<(typeof REQUESTS)[K]["body"]>;

/** The data of the `reply` that answers a request of kind `K`. */
export type ReplyData<K extends RequestKind> = Infer<(typeof REQUESTS)[K]["reply"]>;

/** A request frame of kind `K` (a union when `K` is). */
export type RequestMsg<K extends RequestKind = RequestKind> = {
  [P in K]: Simplify<{ type: P; id: number } & RequestBody<P>>;
}[K];

/** All requests the master may send. */
export type SlaveRequest = RequestMsg;
/** See `REQUESTS.listen`. */
export type ListenReq = RequestMsg<"listen">;
/** See `REQUESTS.transfer`. */
export type TransferReq = RequestMsg<"transfer">;
/** See `REQUESTS.abort`. */
export type AbortReq = RequestMsg<"abort">;
/** See `REQUESTS.delete`. */
export type DeleteReq = RequestMsg<"delete">;
/** See `REQUESTS.rename`. */
export type RenameReq = RequestMsg<"rename">;
/** See `REQUESTS.rmdir`. */
export type RmdirReq = RequestMsg<"rmdir">;
/** See `REQUESTS.checksum`. */
export type ChecksumReq = RequestMsg<"checksum">;
/** See `REQUESTS.set_mtime`. */
export type SetMtimeReq = RequestMsg<"set_mtime">;
/** Where the slave's data connection goes for a transfer. */
export type DataEndpoint = TransferReq["endpoint"];
/** TLS role of the slave on a data connection. */
export type DataTls = TransferReq["tls"];
/** The result of a finished transfer. */
export type TransferResult = ReplyData<"transfer">;
/** Where a sibling send gets its bytes (see `REQUESTS.transfer.source`). */
export type SiblingSource = NonNullable<TransferReq["source"]>;

// ---------------------------------------------------------------- answers (slave → master)

/** Machine-readable reasons of an error reply. */
export const ERROR_CODES = [
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
  "mismatch",
  "stopping",
] as const;

/** Machine-readable reason of an error reply. */
export type ErrorCode = (typeof ERROR_CODES)[number];

const ANSWERS = {
  /**
   * Successful answer to request `id`. `data` is checked against the reply shape of the
   * request it answers (see `parseReply`) by the side that knows which request that was.
   */
  reply: { id: uint, data: isObject },
  /** Failed answer to request `id`. For a failed receive, `partial` carries what is on disk now. */
  error: {
    id: uint,
    code: oneOf(...ERROR_CODES),
    message: str(),
    partial: optional(object({ size: uint, mtime: num, bytes: uint })),
  },
} as const satisfies Readonly<Record<string, Fields>>;

// ---------------------------------------------------------------- events

/** Heartbeat; either side sends it every HEARTBEAT_MS. */
const ping = { t: num } as const;

/** Frames the master sends that are not requests. */
const MASTER_EVENTS = {
  /** First frame of the handshake. */
  hello: { v: uint, nonce: str() },
  /** The slave is accepted; `mac` proves the master knows the secret too. */
  welcome: { mac: str() },
  /** The slave is refused; the link closes after this frame. */
  refused: { reason: str() },
  /**
   * Right after `welcome` and whenever they change: the secret from which session-ticket keys
   * are derived (base64 of 48 bytes), shared so a data connection on the slave can resume the
   * TLS session the client negotiated with the master.
   */
  tls_keys: { ticketSecret: str() },
  /**
   * After `welcome` (and `tls_keys`): list your files now. The slave scans nothing before it
   * gets this (after 10 s without one it scans everything).
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
  remerge_request: { since: uint, paths: optional(arrayOf(str(), MAX_RESCAN_PATHS)) },
  ping,
} as const satisfies Readonly<Record<string, Fields>>;

/** Frames the slave sends that are not answers. */
const SLAVE_EVENTS = {
  /** Answer to hello: `mac` proves the secret, `nonce` is the slave's own challenge. */
  auth: { v: uint, name: str(), nonce: str(), mac: str() },
  ping,
  /** Free and total bytes of the root's file system. */
  disk: { free: uint, total: uint },
  /** A running transfer's bytes so far (about twice a second while bytes move). */
  progress: { xfer: str(), bytes: uint },
  /**
   * One batch of the inventory: ≤ MAX_REMERGE_BATCH files, and the directories (≤
   * MAX_REMERGE_BATCH markers of ≤ MAX_REMERGE_BATCH names each) the slave listed completely.
   * A directory marker says the directory was read completely: `subdirs` names its
   * subdirectories, and every file in it was sent in this or an earlier batch. A directory with
   * many subdirectories is split over several markers of the same `path`; only the last has
   * `complete: true`. A directory's marker comes before any entry or marker of its subdirectories.
   */
  remerge: {
    entries: arrayOf(inventoryEntry, MAX_REMERGE_BATCH),
    dirs: optional(arrayOf(listedDir, MAX_REMERGE_BATCH)),
  },
  /**
   * The answer to one `remerge_request` is complete: `files` entries were sent in all;
   * `scannedAt` is the slave's clock (ms) when the scan started (the next `since`).
   */
  remerge_done: { files: uint, scannedAt: uint },
  /**
   * The slave is stopping on purpose (SIGINT/SIGTERM): the link closes right after this frame.
   * The master takes no new transfer to it and logs its going as a clean stop, not a failure.
   */
  leaving: { reason: str() },
} as const satisfies Readonly<Record<string, Fields>>;

// ---------------------------------------------------------------- frames

type Frames<M extends Readonly<Record<string, Fields>>> = {
  [K in keyof M & string]: Simplify<{ type: K } & Infer<M[K]>>;
};

/** One file in a slave's inventory. `path` is a normalised virtual path ("/a/b.bin"). */
export type InventoryEntry = Guarded<typeof inventoryEntry>;
/** A directory the slave listed (see `remerge`). */
export type ListedDir = Guarded<typeof listedDir>;

type MasterEvents = Frames<typeof MASTER_EVENTS>;
type SlaveFrames = Frames<typeof SLAVE_EVENTS & typeof ANSWERS>;

/** master → slave, first frame. */
export type HelloMsg = MasterEvents["hello"];
/** slave → master, answer to hello. */
export type AuthMsg = SlaveFrames["auth"];
/** master → slave, the slave is accepted. */
export type WelcomeMsg = MasterEvents["welcome"];
/** master → slave, the slave is refused. */
export type RefusedMsg = MasterEvents["refused"];
/** master → slave, session-ticket secret. */
export type TlsKeysMsg = MasterEvents["tls_keys"];
/** master → slave, list your files. */
export type RemergeRequestMsg = MasterEvents["remerge_request"];
/** Heartbeat, both ways. */
export type PingMsg = MasterEvents["ping"];
/** Successful answer to a request (its data is checked by `parseReply`). */
export type ReplyMsg = SlaveFrames["reply"];
/** Failed answer to a request. */
export type ErrorMsg = SlaveFrames["error"];
/** slave → master: free and total bytes. */
export type DiskMsg = SlaveFrames["disk"];
/** slave → master: a running transfer's progress. */
export type ProgressMsg = SlaveFrames["progress"];
/** slave → master: one inventory batch. */
export type RemergeMsg = SlaveFrames["remerge"];
/** slave → master: an inventory is complete. */
export type RemergeDoneMsg = SlaveFrames["remerge_done"];

/** Every frame the master can receive. */
export type FromSlave = SlaveFrames[keyof SlaveFrames];

/** Every frame the slave can receive. */
export type FromMaster = MasterEvents[keyof MasterEvents] | SlaveRequest;

// ---------------------------------------------------------------- validation

const REQUEST_FRAMES = Object.fromEntries(
  Object.entries(REQUESTS).map(([type, r]) => [type, { id: uint, ...r.body }]),
);

/** Every frame type the master may receive, with its fields. */
const FROM_SLAVE: ReadonlyMap<string, Fields> = new Map(
  Object.entries({ ...SLAVE_EVENTS, ...ANSWERS }),
);
/** Every frame type the slave may receive, with its fields. */
const FROM_MASTER: ReadonlyMap<string, Fields> = new Map(
  Object.entries({ ...MASTER_EVENTS, ...REQUEST_FRAMES }),
);

function problem(v: unknown, frames: ReadonlyMap<string, Fields>): string | null {
  if (!isObject(v)) return "frame is not an object";
  const type = v.type;
  const fields = typeof type === "string" ? frames.get(type) : undefined;
  if (fields === undefined) return `unknown message type: "${String(type)}"`;
  const bad = badField(fields, v, "type");
  if (bad === null) return null;
  return Object.hasOwn(fields, bad)
    ? `bad field "${bad}" in "${type}" message`
    : `unknown field "${bad}" in "${type}" message`;
}

/** Throws `TypeError` unless `v` is a frame of one of the types in `frames`. */
function checkFrame(v: unknown, frames: ReadonlyMap<string, Fields>, from: string): void {
  const why = problem(v, frames);
  if (why !== null) throw new TypeError(`Invalid message from ${from}: ${why}`);
}

/** Validates a decoded frame received by the master. Throws `TypeError` naming what is wrong. */
export function parseFromSlave(v: unknown): FromSlave {
  checkFrame(v, FROM_SLAVE, "slave");
  return v as FromSlave;
}

/** Validates a decoded frame received by the slave. Throws `TypeError` naming what is wrong. */
export function parseFromMaster(v: unknown): FromMaster {
  checkFrame(v, FROM_MASTER, "master");
  return v as FromMaster;
}

/**
 * Checks the data of a `reply` against the reply shape of the request (of kind `kind`) it
 * answers. Throws `TypeError` naming the bad field.
 */
export function parseReply<K extends RequestKind>(kind: K, data: unknown): ReplyData<K> {
  const fields: Fields = REQUESTS[kind].reply;
  const bad = isObject(data) ? badField(fields, data) : "data";
  if (bad !== null) {
    throw new TypeError(`Invalid reply from slave: bad field "${bad}" in the "${kind}" reply`);
  }
  return data as ReplyData<K>;
}
