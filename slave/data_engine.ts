/**
 * Data engines: what moves file bytes between a data socket and a file on the slave. Every
 * transfer (and a slave-to-slave copy) goes through one `DataEngine`:
 *
 * - **native** (default): Deno's own TCP and file APIs, two buffers so the next read runs while the
 *   previous chunk is written; receives compute the CRC32 on the fly. Also the engine whenever TLS
 *   runs over the socket.
 * - **zero_copy** (Linux, `slave/zero_copy.ts`): libc through FFI, `sendfile(2)` for sends;
 *   receives take the native path (see that module for why).
 *
 * An engine works on a `DataSocket` (the plain TCP connection, maybe with TLS over it) and an open
 * file; it never closes either. It reports which path moved the bytes (`Moved.path`), which the
 * transfer logs.
 *
 * **No engine computes the CRC32 of what it sends.** The master records the CRC32 of uploads and
 * of copies (which the receiving slave checks); nothing reads the CRC of a client's download, and
 * zero-copy never sees those bytes. Computing it cost the native engine 0.10–0.12 CPU s per GiB,
 * on the path between two socket writes (2026-12-06 20:55 UTC, quiet, 11 rounds of 1 GiB RETR
 * with curl: 0.47 CPU s/GiB without it, 0.58 with it).
 *
 * @module
 */
import { crc32 } from "node:zlib";
import { writeAll, writeAllSync } from "../shared/bytes.ts";
import type { ByteConn } from "../shared/link.ts";
import type { SlaveError } from "./_errors.ts";

/** The engines an operator can choose (`[slave] data_engine`). */
export const DATA_ENGINES = ["native", "zero_copy"] as const;
/** One of `DATA_ENGINES`. */
export type DataEngineName = typeof DATA_ENGINES[number];
/** The environment variable that overrides `[slave] data_engine` (tests run both engines). */
export const DATA_ENGINE_ENV = "DRFTPD_DATA_ENGINE";

/**
 * Bytes per read of the native engine between a socket and a file, sends and receives (each of
 * its two buffers: 2 MiB per transfer). Fewer, larger reads cost less, measured quiet on
 * 2026-12-06 (1 GiB with curl, each variant a site in the same runs as vsftpd):
 *
 * - Sends read the file through Deno's thread pool while the previous chunk is written. RETR, 11
 *   rounds, CRC32 off, the last 6 once every site was warm: 256 KiB 0.42–0.55 CPU s/GiB, 1 MiB
 *   0.33–0.43, 4 MiB 0.31–0.43 at no better speed. `readSync` (1 MiB) cost about the same as
 *   async 1 MiB, but a read from a cold disk would then stop the event loop (every transfer and
 *   the master link) for its duration, so sends stay asynchronous. `file.readable.pipeTo()` into
 *   the socket: 0.26× vsftpd, 1.89 CPU s/GiB.
 * - A receive's socket read returns what the socket holds, which is more than 256 KiB when the
 *   slave falls behind. STOR, 7 rounds, two runs: 256 KiB 1.00× / 0.96× vsftpd (0.72 / 0.88 CPU
 *   s/GiB), 512 KiB 1.12×, 1 MiB 1.22× / 1.11× (0.63 / 0.80), 4 MiB 1.12× (0.66).
 */
export const FILE_CHUNK = 1024 * 1024;

/**
 * Bytes per read of a relay (socket to socket, `relayStream`): it reads at most one chunk ahead
 * of the sink, so this bounds what a slow client makes the slave hold.
 */
export const RELAY_CHUNK = 256 * 1024;

/** The data connection an engine moves bytes over. */
export interface DataSocket {
  /** The plain TCP connection; with TLS over it, only `conn` may carry bytes. */
  readonly plain: Deno.TcpConn;
  /** Where file bytes go: the TLS connection over `plain`, or `plain` itself. */
  readonly conn: ByteConn;
  /** Whether TLS runs over `plain`. */
  readonly secure: boolean;
  /**
   * Registers `fn` to run when the socket is dropped (abort), before `plain` is closed; returns
   * the function that unregisters it. Lets an engine wake a call blocked on the socket's fd.
   */
  onDrop(fn: () => void): () => void;
}

/** How an engine classifies failures and reports progress. */
export interface MoveHooks {
  /** Aborts the move; the engine stops as soon as it can (the socket is being dropped). */
  signal: AbortSignal;
  /** Maps a failure of the source (the file for a send, the socket for a receive). */
  readError: (e: unknown) => SlaveError;
  /** Maps a failure of the sink (the socket for a send, the file for a receive). */
  writeError: (e: unknown) => SlaveError;
  /** Called with the total after each chunk is moved. */
  progress: (bytes: number) => void;
}

/** What an engine moved. */
export interface Moved {
  bytes: number;
  /** CRC32 of the bytes moved; null for a send (see the module documentation). */
  crc: number | null;
  /** Which path moved them, for the log: "native", "native+tls", "sendfile". */
  path: string;
}

/** A file region to send: `length` bytes from `offset` of the file at `realPath`. */
export interface FileRange {
  offset: number;
  length: number;
  /** The real path the file was opened at (after the containment check). */
  realPath: string;
}

/** Where a receive writes: from `offset` of the file at `realPath`. */
export interface FilePosition {
  offset: number;
  /** The real path the file was opened at (after the containment check). */
  realPath: string;
}

/** Moves bytes between data sockets and files; see the module documentation. */
export interface DataEngine {
  /** The engine's name, as configured. */
  readonly name: DataEngineName;
  /**
   * Sees a passive data connection as soon as it is accepted, before its transfer order arrives
   * (the client connects after the 227 and only then sends RETR): an engine may prepare what a
   * send on it will need off the transfer's path. Must not close or read it.
   */
  adopt?(conn: Deno.TcpConn): void;
  /** Sends `range` of `file` to `socket`. `file`'s position is not used. */
  sendFile(
    socket: DataSocket,
    file: Deno.FsFile,
    range: FileRange,
    hooks: MoveHooks,
  ): Promise<Moved>;
  /**
   * Writes what `socket` sends until it ends to `file`, whose current position is `at.offset`
   * (the native engine writes through `file`; zero-copy through its own fd at `at.realPath`).
   */
  receiveFile(
    socket: DataSocket,
    file: Deno.FsFile,
    at: FilePosition,
    hooks: MoveHooks,
  ): Promise<Moved>;
}

/** The native engine: Deno's TCP and file APIs (see the module documentation). */
export const nativeEngine: DataEngine = {
  name: "native",
  async sendFile(socket, file, range, hooks) {
    if (range.offset > 0) await file.seek(range.offset, Deno.SeekMode.Start);
    const out = socket.conn;
    const { bytes } = await pump(
      (buf) => readSome(file, buf),
      (chunk) => writeAll(out, chunk),
      hooks,
      { bufferSize: FILE_CHUNK, crc: false },
    );
    return { bytes, crc: null, path: socket.secure ? "native+tls" : "native" };
  },
  async receiveFile(socket, file, _at, hooks) {
    const conn = socket.conn;
    const moved = await pump(
      // Each read is written at once. Filling whole buffers first (fewer, larger writes) was
      // measured slower here: 1 GiB STOR median 975 → 2130 MiB/s writing per read, as the page
      // cache then takes the pages the socket just freed (this VM's fresh pages are costly).
      (buf) => readSome(conn, buf),
      // Synchronous: an async FsFile.write goes through the blocking thread pool for every
      // chunk, which made uploads CPU-bound (665 → 1787 MiB/s measured with writeSync).
      (chunk) => writeAllSync(file, chunk),
      hooks,
      { bufferSize: FILE_CHUNK, crc: true },
    );
    return { ...moved, path: socket.secure ? "native+tls" : "native" };
  },
};

/** How `relayStream` bounds and copies what it relays. */
export interface RelayOptions {
  /** Most bytes the source may send; one more is a failure (`tooLong`). */
  limit: number;
  /** The failure for a source that sends more than `limit` bytes (`received` so far). */
  tooLong: (received: number) => SlaveError;
  /** Sees each chunk after it was written to the sink (a copy kept on disk); must not keep it. */
  tee?: (chunk: Uint8Array) => void;
}

/**
 * Streams what `source` sends to `sink` as it arrives, until `source` ends (a slave serving a
 * file it fetches from another slave). At most one chunk is read ahead of the one being written,
 * so the source is read no faster than the sink drains and at most two buffers of
 * `RELAY_CHUNK` are held. Every engine uses this loop: zero-copy has no socket-to-socket
 * path. Never closes either socket.
 */
export async function relayStream(
  source: DataSocket,
  sink: DataSocket,
  hooks: MoveHooks,
  options: RelayOptions,
): Promise<Moved> {
  const from = source.conn;
  const out = sink.conn;
  const { limit, tooLong, tee } = options;
  let received = 0;
  const moved = await pump(
    async (buf) => {
      const chunk = await readSome(from, buf);
      if (chunk === null) return null;
      received += chunk.length;
      if (received > limit) throw tooLong(received);
      return chunk;
    },
    async (chunk) => {
      await writeAll(out, chunk);
      tee?.(chunk);
    },
    hooks,
    { bufferSize: RELAY_CHUNK, crc: true },
  );
  const tls = source.secure || sink.secure ? "+tls" : "";
  return { ...moved, path: `native relay${tls}` };
}

/**
 * Copies chunks from `read` to `write` until `read` returns null, with two buffers of
 * `bufferSize` so the next read runs while the previous chunk is written. Returns the bytes
 * moved and, when `crc` is set, their CRC32 (else 0).
 */
async function pump(
  read: (buf: Uint8Array) => Promise<Uint8Array | null>,
  write: (chunk: Uint8Array) => Promise<void> | void,
  hooks: MoveHooks,
  options: { bufferSize: number; crc: boolean },
): Promise<{ bytes: number; crc: number }> {
  const size = options.bufferSize;
  const bufs = [new Uint8Array(size), new Uint8Array(size)] as const;
  let turn = 0;
  const readNext = () => {
    const p = read(bufs[turn]!).catch((e) => Promise.reject(hooks.readError(e)));
    p.catch(() => {}); // settles after the caller gave up when a write failed first
    turn ^= 1;
    return p;
  };
  let crc = 0;
  let bytes = 0;
  let reading = readNext();
  for (;;) {
    const chunk = await reading;
    if (chunk === null) return { bytes, crc };
    reading = readNext(); // into the other buffer
    try {
      await write(chunk);
    } catch (e) {
      throw hooks.writeError(e);
    }
    if (options.crc) crc = crc32(chunk, crc);
    bytes += chunk.length;
    hooks.progress(bytes);
  }
}

/** One read into `buf`: the filled part, or null at the end of the stream. */
async function readSome(
  r: { read(p: Uint8Array): Promise<number | null> },
  buf: Uint8Array,
): Promise<Uint8Array | null> {
  const n = await r.read(buf);
  return n === null || n === 0 ? null : buf.subarray(0, n);
}
