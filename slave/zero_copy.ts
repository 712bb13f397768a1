/**
 * The zero-copy data engine (Linux): libc through FFI, loaded by `loadZeroCopy()` while
 * `--allow-ffi` is still granted (the role revokes it right after, as for the OpenSSL engine;
 * calling loaded symbols needs no permission).
 *
 * - **Send**: `sendfile(2)` from the file to the socket, from the requested offset, in chunks of
 *   `SEND_CHUNK` bytes: the bytes go from the page cache to the socket without entering this
 *   process. The engine therefore never sees them: a send reports no CRC32 (the master uses the
 *   CRC of receives only).
 * - **Receive**: the native engine's path (Deno reads into two reused buffers, CRC32 on those
 *   bytes, each chunk written at once). The bytes must reach user space for the CRC32 anyway, and
 *   the two ways tried through libc lost to it on this machine (2026-12-06, 1 GiB STOR with curl,
 *   same runs as vsftpd): `recv(2)` into two buffers with `pwrite(2)`, every call a hop to a
 *   worker thread and back, ran at 0.59–0.60× vsftpd against native's 0.89–0.98×; `splice(2)`
 *   socket → pipe → file with the CRC32 read back from the page cache (one user-space copy fewer,
 *   three syscalls per chunk instead of two, a Deno read to wait) ran at 82–199 MiB/s against
 *   native's 178–504 and vsftpd's 154–310 (load ~17).
 * - With TLS over the socket the native engine runs (OpenSSL or node:tls need the plaintext).
 *   Kernel TLS (`SSL_sendfile`) would keep sends zero-copy, but needs the kernel's `tls` ULP:
 *   this machine's kernel offers none (`/proc/sys/net/ipv4/tcp_available_ulp` lists only
 *   `mptcp`, 2026-12-06), so it is not used.
 *
 * **The socket's fd.** Deno does not expose the fd of a `Deno.TcpConn`, so the engine finds it: it
 * lists `/proc/self/fd` and takes the socket whose `getsockname` and `getpeername` both equal the
 * connection's local and remote address (family, address and port). A connected TCP socket's
 * address pair is unique on the host, and the `Deno.TcpConn` stays open for as long as the engine
 * uses the fd (the transfer owns it, and the engine never closes it), so the number cannot name
 * another socket meanwhile. The search costs one syscall per open fd (two for a socket bound at
 * the connection's address); for a passive connection it runs when the connection is accepted
 * (`adopt`, before the client's RETR arrives), for an active one when the send starts. For a send
 * the engine clears `O_NONBLOCK` (restored after) and runs every `sendfile` as a `nonblocking` FFI
 * call, i.e. on a worker thread, so the event loop stays free. Abort (ABOR, link loss, slave stop) drops the socket: the engine's drop
 * hook `shutdown(2)`s the fd first, which wakes a blocked call at once, and only then is the
 * connection closed; no call is started once the socket is dropped. A client that stops reading
 * blocks `sendfile` exactly as it blocks the native engine's write, until an abort. If the
 * process dies, the kernel closes the sockets as for the native engine.
 *
 * **The file's fd.** The transfer opened the file with Deno (after the path containment check);
 * the engine opens the same path again with `open(2)` (read-only) and checks with `fstat(2)` that it is the very inode Deno opened
 * (device and inode number), else it refuses.
 *
 * The errno of a call made on a worker thread is not readable from JavaScript, so a failed call
 * is reported without it ("the peer closed or reset the connection" is the usual cause).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { SlaveError } from "./_errors.ts";
import { canonicalHost } from "../shared/net.ts";
import {
  type DataEngine,
  type DataSocket,
  type FilePosition,
  type FileRange,
  type Moved,
  type MoveHooks,
  nativeEngine,
} from "./data_engine.ts";

/**
 * Bytes per `sendfile` call: bounds how long a send goes without a progress report. Each call is
 * a hop to a worker thread and back; on a loaded 2-core VM (2026-12-06, load ~20) one call for a
 * 512 MiB file sent 770–2153 MiB/s against 474–644 MiB/s in 8 MiB calls, so calls are large.
 */
export const SEND_CHUNK = 256 * 1024 * 1024;
const SYMBOLS = {
  sendfile: { parameters: ["i32", "i32", "buffer", "usize"], result: "isize", nonblocking: true },
  open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getdents64: { parameters: ["i32", "buffer", "usize"], result: "isize" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
/** O_DIRECTORY differs between x86_64 and aarch64. */
const O_DIRECTORY_X86 = 0o200000;
const O_DIRECTORY_ARM = 0o40000;
const DIRENT_BUFFER = 64 * 1024;
const SHUT_RDWR = 2;
const AF_INET = 2;
const AF_INET6 = 10;
/** `struct stat` is 144 bytes on x86_64 and 128 on aarch64; st_dev at 0, st_ino at 8 on both. */
const STAT_BYTES = 256;
const SOCKADDR_BYTES = 128;

/**
 * Loads libc and returns the zero-copy engine. Needs `--allow-ffi` for this call only. Throws
 * (naming what is missing) off Linux or when a symbol is missing; the caller then uses the native
 * engine.
 */
export function loadZeroCopy(path = "libc.so.6"): DataEngine {
  if (Deno.build.os !== "linux") {
    throw new Error(`The zero-copy engine needs Linux, not ${Deno.build.os}`);
  }
  return new ZeroCopyEngine(Deno.dlopen(path, SYMBOLS).symbols);
}

class ZeroCopyEngine implements DataEngine {
  readonly name = "zero_copy" as const;
  #libc: Libc;
  #log = getLogger(["drftpd", "slave"]);
  /**
   * The fds of passive connections, found when they were accepted (`adopt`): the search lists
   * every open fd (~0.45 ms with ~30 of them), which then runs while the client sends its RETR
   * rather than between the RETR and the first byte. A connection keeps its fd until it is
   * closed, and a closed one is never sent on, so an entry cannot name another socket.
   */
  #fds = new WeakMap<Deno.TcpConn, number>();

  constructor(libc: Libc) {
    this.#libc = libc;
  }

  adopt(conn: Deno.TcpConn): void {
    const fd = this.#socketFd(conn);
    if (fd !== null) this.#fds.set(conn, fd);
  }

  async sendFile(
    socket: DataSocket,
    file: Deno.FsFile,
    range: FileRange,
    hooks: MoveHooks,
  ): Promise<Moved> {
    if (socket.secure) return await nativeEngine.sendFile(socket, file, range, hooks);
    const libc = this.#libc;
    const fd = this.#fds.get(socket.plain) ?? this.#socketFd(socket.plain);
    if (fd === null) return await nativeEngine.sendFile(socket, file, range, hooks);
    const src = this.#openSame(file, range.realPath, O_RDONLY, hooks.readError);
    try {
      return await borrow(libc, socket, fd, hooks.writeError, async (call) => {
        const offset = new BigInt64Array([BigInt(range.offset)]);
        const offsetBytes = new Uint8Array(offset.buffer);
        let bytes = 0;
        while (bytes < range.length) {
          const want = Math.min(SEND_CHUNK, range.length - bytes);
          const n = Number(await call(() => libc.sendfile(fd, src, offsetBytes, BigInt(want))));
          if (n < 0) {
            throw hooks.writeError(new Error("sendfile(2) failed: the peer closed or reset it?"));
          }
          if (n === 0) {
            // The file got shorter under us: send what there is, like the native engine.
            break;
          }
          bytes += n;
          hooks.progress(bytes);
        }
        return { bytes, crc: null, path: "sendfile" };
      });
    } finally {
      libc.close(src);
    }
  }

  async receiveFile(
    socket: DataSocket,
    file: Deno.FsFile,
    at: FilePosition,
    hooks: MoveHooks,
  ): Promise<Moved> {
    return await nativeEngine.receiveFile(socket, file, at, hooks);
  }

  /** The fd of `conn` (see the module documentation), or null (logged) if none matches. */
  #socketFd(conn: Deno.TcpConn): number | null {
    const local = conn.localAddr;
    const remote = conn.remoteAddr;
    const localHost = canonicalHost(local.hostname);
    const remoteHost = canonicalHost(remote.hostname);
    const fds = this.#openFds();
    if (fds === null) {
      this.#log.warn("Zero-copy engine cannot list /proc/self/fd; using native");
      return null;
    }
    for (const fd of fds) {
      // getpeername only for a socket bound where `conn` is: one syscall for every other fd.
      const mine = this.#sockAddr(fd, "getsockname");
      if (mine === null || mine.port !== local.port || mine.host !== localHost) continue;
      const peer = this.#sockAddr(fd, "getpeername");
      if (peer !== null && peer.port === remote.port && peer.host === remoteHost) return fd;
    }
    this.#log.warn("Zero-copy engine found no fd for the data connection {local} ↔ {remote}", {
      local: `${local.hostname}:${local.port}`,
      remote: `${remote.hostname}:${remote.port}`,
    });
    return null;
  }

  /**
   * The process's open fds, read from /proc/self/fd with open(2) and getdents64(2) (Deno's own
   * readDir needs every permission for /proc/self, and ffi is revoked by then), or null.
   */
  #openFds(): number[] | null {
    const libc = this.#libc;
    const flags = O_RDONLY | O_CLOEXEC |
      (Deno.build.arch === "aarch64" ? O_DIRECTORY_ARM : O_DIRECTORY_X86);
    const dir = libc.open(new TextEncoder().encode("/proc/self/fd\0"), flags, 0);
    if (dir < 0) return null;
    try {
      const fds: number[] = [];
      const buf = new Uint8Array(DIRENT_BUFFER);
      const view = new DataView(buf.buffer);
      const decoder = new TextDecoder();
      for (;;) {
        const n = Number(libc.getdents64(dir, buf, BigInt(buf.length)));
        if (n < 0) return null;
        if (n === 0) break;
        // struct linux_dirent64: u64 d_ino, i64 d_off, u16 d_reclen, u8 d_type, char d_name[]
        for (let off = 0; off < n;) {
          const reclen = view.getUint16(off + 16, true);
          if (reclen === 0) return null;
          const name = buf.subarray(off + 19, off + reclen);
          const text = decoder.decode(name.subarray(0, Math.max(0, name.indexOf(0))));
          const fd = Number(text);
          if (/^\d+$/.test(text) && fd !== dir) fds.push(fd);
          off += reclen;
        }
      }
      return fds;
    } finally {
      libc.close(dir);
    }
  }

  #sockAddr(
    fd: number,
    which: "getsockname" | "getpeername",
  ): { host: string; port: number } | null {
    const addr = new Uint8Array(SOCKADDR_BYTES);
    const len = new Uint32Array([SOCKADDR_BYTES]);
    if (this.#libc[which](fd, addr, new Uint8Array(len.buffer)) !== 0) return null;
    return parseSockAddr(addr);
  }

  /**
   * Opens `realPath` with `mode` and checks it is the inode `file` has open; returns the fd.
   * Failures go through `fail`.
   */
  #openSame(
    file: Deno.FsFile,
    realPath: string,
    mode: number,
    fail: (e: unknown) => SlaveError,
  ): number {
    const libc = this.#libc;
    const fd = libc.open(new TextEncoder().encode(`${realPath}\0`), mode | O_CLOEXEC, 0);
    if (fd < 0) throw fail(new Error(`open(2) of "${realPath}" failed`));
    const st = new BigUint64Array(STAT_BYTES / 8);
    const info = file.statSync();
    if (
      libc.fstat(fd, new Uint8Array(st.buffer)) !== 0 ||
      st[0] !== BigInt(info.dev) || st[1] !== BigInt(info.ino ?? -1)
    ) {
      libc.close(fd);
      throw fail(new Error(`"${realPath}" was replaced while it was being opened`));
    }
    return fd;
  }
}

/** Runs one blocking libc call on a worker thread; refuses once the socket is dropped. */
type Call = <T>(start: () => Promise<T>) => Promise<T>;

/**
 * Runs `fn` with the socket's fd in blocking mode: registers the drop hook that wakes blocked
 * calls with `shutdown(2)`, and on the way out wakes and awaits any call still running, then
 * restores the fd's flags (unless it was dropped: then the fd may be closed already).
 */
async function borrow<T>(
  libc: Libc,
  socket: DataSocket,
  fd: number,
  fail: (e: unknown) => SlaveError,
  fn: (call: Call) => Promise<T>,
): Promise<T> {
  let dropped = false;
  const running = new Set<Promise<unknown>>();
  const unregister = socket.onDrop(() => {
    dropped = true;
    libc.shutdown(fd, SHUT_RDWR); // wakes a blocked sendfile; close follows
  });
  const flags = libc.fcntl(fd, F_GETFL, 0);
  libc.fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  const call: Call = (start) => {
    if (dropped) return Promise.reject(fail(new Error("The data connection was dropped")));
    const p = start();
    running.add(p);
    p.finally(() => running.delete(p)).catch(() => {});
    return p;
  };
  try {
    return await fn(call);
  } finally {
    if (running.size > 0) {
      if (!dropped) libc.shutdown(fd, SHUT_RDWR);
      await Promise.allSettled([...running]);
    }
    unregister();
    if (!dropped) libc.fcntl(fd, F_SETFL, flags);
  }
}

/**
 * Host (as `canonicalHost` writes it) and port of a `struct sockaddr_in` or `sockaddr_in6`; null
 * for another family.
 */
export function parseSockAddr(a: Uint8Array): { host: string; port: number } | null {
  const family = a[0]! | (a[1]! << 8); // sa_family_t is host order: little-endian here
  const port = (a[2]! << 8) | a[3]!;
  if (family === AF_INET) return { host: a.subarray(4, 8).join("."), port };
  if (family === AF_INET6) {
    const words: string[] = [];
    for (let i = 8; i < 24; i += 2) words.push(((a[i]! << 8) | a[i + 1]!).toString(16));
    return { host: canonicalHost(words.join(":")), port };
  }
  return null;
}
