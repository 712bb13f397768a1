/**
 * Data engines: what moves file bytes between a data socket and a file on the slave. Every
 * transfer (and a slave-to-slave copy) goes through one `DataEngine`:
 *
 * - **native** (default): Deno's own TCP and file APIs, two buffers so one chunk is read while the
 *   other is written, CRC32 on the fly; file reads and writes are synchronous (page cache), socket
 *   reads and writes asynchronous. Also the engine whenever TLS runs over the socket.
 * - **zero_copy** (Linux, `slave/zero_copy.ts`): libc through FFI, `sendfile(2)` for sends;
 *   receives take the native path (see that module for why).
 *
 * An engine works on a `DataSocket` (the plain TCP connection, maybe with TLS over it) and an open
 * file; it never closes either. It reports which path moved the bytes (`Moved.path`), which the
 * transfer logs.
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
 * Bytes per read of the native engine's receives (each of its two buffers): a read returns what
 * the socket holds, and each is written at once (see `nativeEngine.receiveFile`).
 */
export const NATIVE_BUFFER_SIZE = 256 * 1024;
/**
 * Bytes per read of the native engine's sends (each of its two buffers). 1 MiB read with
 * `readSync` cost 0.34 CPU s/GiB against 0.40–0.46 for 256 KiB, 0.43–1.03 for 4 MiB and 0.71–0.80
 * for the former 256 KiB async reads (1 GiB to a local reader, 4 rounds, load ~17, 2026-12-06).
 */
export const NATIVE_SEND_BUFFER_SIZE = 1024 * 1024;
/**
 * `SLOW_READS` synchronous file reads in a row, each slower than `SLOW_READ_MS`, mean the file is
 * not in the page cache: the send reads through Deno's thread pool from then on, so the disk does
 * not stall the event loop. (One slow read is not enough: on a loaded machine a page-cache read
 * is often preempted for longer than that.)
 */
export const SLOW_READ_MS = 5;
/** See `SLOW_READ_MS`. */
export const SLOW_READS = 3;

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
  /** CRC32 of the bytes moved, or null when the engine never saw them (`sendfile`). */
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
    // Page-cache reads are synchronous: an async FsFile.read hops to the blocking thread pool
    // for every chunk, which nearly doubled the CPU per GiB (see NATIVE_SEND_BUFFER_SIZE).
    let slow = 0;
    const read = async (buf: Uint8Array): Promise<Uint8Array | null> => {
      if (slow >= SLOW_READS) return await readSome(file, buf);
      const t0 = performance.now();
      const n = file.readSync(buf);
      slow = performance.now() - t0 > SLOW_READ_MS ? slow + 1 : 0;
      return n === null || n === 0 ? null : buf.subarray(0, n);
    };
    const moved = await pump(read, (chunk) => writeAll(out, chunk), hooks, {
      size: NATIVE_SEND_BUFFER_SIZE,
      // The socket write drains while the next chunk is read.
      first: "write",
    });
    return { ...moved, path: socket.secure ? "native+tls" : "native" };
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
      // The next socket read is under way while the previous chunk is written.
      { size: NATIVE_BUFFER_SIZE, first: "read" },
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
 * `NATIVE_BUFFER_SIZE` are held. Every engine uses this loop: zero-copy has no socket-to-socket
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
    { size: NATIVE_BUFFER_SIZE, first: "read" },
  );
  const tls = source.secure || sink.secure ? "+tls" : "";
  return { ...moved, path: `native relay${tls}` };
}

/**
 * Copies chunks from `read` to `write` until `read` returns null, with two buffers of
 * `options.size` bytes so one chunk is read while the other is written: after a chunk arrives,
 * `first: "read"` starts the next read before writing it, `first: "write"` starts the write
 * before reading the next (whichever side is asynchronous goes first). Returns the bytes moved and
 * their CRC32.
 */
async function pump(
  read: (buf: Uint8Array) => Promise<Uint8Array | null>,
  write: (chunk: Uint8Array) => Promise<void> | void,
  hooks: MoveHooks,
  options: { size: number; first: "read" | "write" },
): Promise<{ bytes: number; crc: number }> {
  const bufs = [new Uint8Array(options.size), new Uint8Array(options.size)] as const;
  let turn = 0;
  const readNext = () => {
    const p = read(bufs[turn]!).catch((e) => Promise.reject(hooks.readError(e)));
    p.catch(() => {}); // settles after the caller gave up when a write failed first
    turn ^= 1;
    return p;
  };
  const writeNow = async (chunk: Uint8Array) => {
    try {
      await write(chunk);
    } catch (e) {
      throw hooks.writeError(e);
    }
  };
  let crc = 0;
  let bytes = 0;
  let reading = readNext();
  for (;;) {
    const chunk = await reading;
    if (chunk === null) return { bytes, crc };
    let writing: Promise<void>;
    if (options.first === "read") {
      reading = readNext(); // into the other buffer
      writing = writeNow(chunk);
    } else {
      writing = writeNow(chunk);
      writing.catch(() => {}); // awaited below, unless the read fails first
      reading = readNext();
    }
    crc = crc32(chunk, crc);
    await writing;
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
