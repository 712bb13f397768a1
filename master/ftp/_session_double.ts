/**
 * Test doubles for the session layer (internal, tests only): an in-memory control connection,
 * an in-memory slave that answers link requests with scripted replies, and a master around
 * them (temp KV, defaults from an empty master.toml), so a command's behaviour runs in
 * milliseconds without sockets or processes.
 */
import { parseMasterConfig } from "../../shared/config.ts";
import type { MasterConfig } from "../../shared/config_types.ts";
import type { ByteConn } from "../../shared/link.ts";
import { FrameConn } from "../../shared/link.ts";
import type {
  ErrorCode,
  FromMaster,
  FromSlave,
  RequestKind,
  RequestMsg,
} from "../../shared/protocol.ts";
import { AccountGuard, LoginGuard } from "../auth/login_guard.ts";
import { PathLocks } from "../path_locks.ts";
import { PathPolicy } from "../auth/path_rules.ts";
import { defaultUser, UserStore } from "../auth/users.ts";
import { KvFilelist } from "../filelist/kv_filelist.ts";
import { SlaveRegistry } from "../slaves/registry.ts";
import { SlaveHandle, type SlaveLinkEvents } from "../slaves/slave_handle.ts";
import { SiteMetrics } from "../metrics.ts";
import { dispatch } from "./dispatcher.ts";
import { formatReply } from "./replies.ts";
import { type ControlConn, type MasterServices, Session } from "./session.ts";
import { SessionRegistry } from "./session_registry.ts";

/** One direction of an in-memory byte stream. */
class Pipe {
  #chunks: Uint8Array[] = [];
  #waiting: (() => void) | null = null;
  #ended = false;

  push(bytes: Uint8Array): void {
    if (this.#ended) throw new Deno.errors.BrokenPipe("Pipe is closed");
    this.#chunks.push(bytes.slice());
    this.#wake();
  }

  end(): void {
    this.#ended = true;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiting;
    this.#waiting = null;
    w?.();
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#ended) return null;
      await new Promise<void>((r) => (this.#waiting = r));
    }
    const head = this.#chunks[0]!;
    const n = Math.min(p.length, head.length);
    p.set(head.subarray(0, n));
    if (n === head.length) this.#chunks.shift();
    else this.#chunks[0] = head.subarray(n);
    return n;
  }
}

/** Two connected in-memory byte connections. Closing either ends both directions. */
export function memoryPair(): [ByteConn, ByteConn] {
  const ab = new Pipe();
  const ba = new Pipe();
  const close = () => {
    ab.end();
    ba.end();
  };
  const side = (inbound: Pipe, outbound: Pipe): ByteConn => ({
    read: (p) => inbound.read(p),
    write: (p) => {
      outbound.push(p);
      return Promise.resolve(p.length);
    },
    close,
  });
  return [side(ba, ab), side(ab, ba)];
}

/** A reply as the client sees it. */
export interface Reply {
  code: number;
  /** Every line's text after the code and separator (inner lines as sent). */
  lines: string[];
}

/** The client end of an in-memory control connection: send a line, read the reply. */
export class MemoryClient {
  #conn: ByteConn;
  #buf = "";
  #decoder = new TextDecoder();
  #encoder = new TextEncoder();

  /** Wraps the client side of a pair. */
  constructor(conn: ByteConn) {
    this.#conn = conn;
  }

  async #line(): Promise<string> {
    for (;;) {
      const i = this.#buf.indexOf("\r\n");
      if (i >= 0) {
        const line = this.#buf.slice(0, i);
        this.#buf = this.#buf.slice(i + 2);
        return line;
      }
      const chunk = new Uint8Array(4096);
      const n = await this.#conn.read(chunk);
      if (n === null) throw new Error(`Control connection closed; unread: ${this.#buf}`);
      this.#buf += this.#decoder.decode(chunk.subarray(0, n));
    }
  }

  /** Reads one (possibly multi-line) reply. */
  async read(): Promise<Reply> {
    const first = await this.#line();
    const code = Number(first.slice(0, 3));
    const lines = [first.slice(4)];
    if (first[3] === "-") {
      for (;;) {
        const l = await this.#line();
        if (l.startsWith(`${code} `)) {
          lines.push(l.slice(4));
          break;
        }
        lines.push(l);
      }
    }
    return { code, lines };
  }

  /** Sends a command line without waiting. */
  async write(line: string): Promise<void> {
    await this.#conn.write(this.#encoder.encode(line + "\r\n"));
  }

  /** Sends a command line and reads its reply. */
  async send(line: string): Promise<Reply> {
    await this.write(line);
    return await this.read();
  }
}

/** A scripted answer to one link request: reply data, or an error frame's code and message. */
export type SlaveAnswer =
  | Record<string, unknown>
  | { error: ErrorCode; message: string; partial?: { size: number; mtime: number; bytes: number } };

const noRemerge: SlaveLinkEvents = {
  start: () => Promise.resolve(),
  remerge: () => Promise.reject(new Error("unexpected remerge")),
  remergeDone: () => Promise.reject(new Error("unexpected remerge_done")),
};

/**
 * An in-memory slave: a real SlaveHandle over an in-memory frame link (its read loop validates
 * every frame), whose peer reads each request and answers it with `answer(request)` (default:
 * `listen` on 127.0.0.1:40000, every other request `{}`). `requests` records them in order.
 */
export class SlaveDouble {
  readonly handle: SlaveHandle;
  readonly requests: RequestMsg[] = [];
  answer: (req: RequestMsg) => SlaveAnswer | Promise<SlaveAnswer>;
  #peer: FrameConn<FromSlave>;
  #served: Promise<void>;
  #loop: Promise<void>;

  /** Creates slave `name`, online, with plenty of free space. */
  constructor(name: string) {
    const [master, slave] = memoryPair();
    this.handle = new SlaveHandle(
      name,
      new FrameConn<FromMaster>(master),
      "127.0.0.1",
      "127.0.0.1",
    );
    this.handle.state = "online";
    this.handle.disk = { free: 1e12, total: 2e12 };
    this.answer = (req) => req.type === "listen" ? { host: "127.0.0.1", port: 40000 } : {};
    this.#peer = new FrameConn<FromSlave>(slave);
    this.#served = this.handle.serve(noRemerge);
    this.#loop = this.#serve();
  }

  async #serve(): Promise<void> {
    for (;;) {
      let frame: { type: string } | null;
      try {
        frame = await this.#peer.read() as { type: string } | null;
      } catch {
        return;
      }
      if (frame === null) return;
      if (frame.type === "ping") continue;
      const req = frame as RequestMsg;
      this.requests.push(req);
      Promise.resolve(this.answer(req)).then((a) => {
        const reply = "error" in a && typeof a.error === "string"
          ? {
            type: "error" as const,
            id: req.id,
            code: a.error,
            message: String(a.message),
            ...(a.partial ? { partial: a.partial } : {}),
          }
          : { type: "reply" as const, id: req.id, data: a };
        return this.#peer.write(reply as FromSlave);
      }).catch(() => {});
    }
  }

  /** The requests of one kind, in order. */
  of(kind: RequestKind): RequestMsg[] {
    return this.requests.filter((r) => r.type === kind);
  }

  /** The link drops: outstanding and later requests fail with SlaveGoneError. */
  async close(): Promise<void> {
    this.handle.close();
    this.#peer.close();
    await this.#served;
    await this.#loop;
  }
}

/** A master around in-memory doubles; `connect()` opens sessions. Use with `await using`. */
export class MasterDouble implements AsyncDisposable {
  readonly services: MasterServices;
  readonly kv: Deno.Kv;
  readonly filelist: KvFilelist;
  readonly slaves: SlaveDouble[] = [];
  #abort = new AbortController();
  #sessions: Promise<void>[] = [];
  #nextId = 1;

  private constructor(kv: Deno.Kv, config: MasterConfig) {
    this.kv = kv;
    this.filelist = new KvFilelist(kv);
    this.services = {
      config,
      filelist: this.filelist,
      users: new UserStore(kv),
      loginGuard: new LoginGuard({
        banAfter: config.ftp.ban_after_failures,
        banMs: config.ftp.ban_seconds * 1000,
      }),
      accountGuard: new AccountGuard({
        lockAfter: config.ftp.account_lock_after,
        lockMs: config.ftp.account_lock_seconds * 1000,
        maxDelayMs: config.ftp.account_max_delay_seconds * 1000,
        kv,
      }),
      slaves: new SlaveRegistry(kv, config.selection),
      locks: new PathLocks(),
      sessions: new SessionRegistry(),
      paths: new PathPolicy(config.permissions),
      metrics: new SiteMetrics(),
      tls: null,
      signal: this.#abort.signal,
      stopping: this.#abort.signal,
    };
  }

  /** A master with the defaults of an empty master.toml plus `toml`, an in-memory KV, no slaves. */
  static async create(toml = ""): Promise<MasterDouble> {
    const config = parseMasterConfig(toml, null, "/nonexistent");
    return new MasterDouble(await Deno.openKv(":memory:"), config);
  }

  /** Attaches a new in-memory slave called `name`. */
  async addSlave(name: string): Promise<SlaveDouble> {
    const s = new SlaveDouble(name);
    await this.services.slaves.attach(s.handle);
    this.slaves.push(s);
    return s;
  }

  /**
   * Opens a session and reads its 220; with `user`, the session is logged in as that user (an
   * admin when called "root") without USER/PASS, so no password hashing slows the test.
   */
  async connect(
    user: string | null = "alice",
  ): Promise<{ client: MemoryClient; session: Session }> {
    const [server, client] = memoryPair();
    const addr = { transport: "tcp" as const, hostname: "127.0.0.1", port: 21 };
    const conn: ControlConn = {
      ...server,
      remoteAddr: { ...addr, port: 50000 + this.#nextId },
      localAddr: addr,
    };
    const session = new Session(conn, this.services, this.#nextId++);
    this.#sessions.push(session.run(dispatch));
    const c = new MemoryClient(client);
    const hello = await c.read();
    if (hello.code !== 220) {
      throw new Error(`Expected 220, got ${formatReply(hello.code, hello.lines)}`);
    }
    if (user !== null) session.user = defaultUser(user, { admin: user === "root" });
    return { client: c, session };
  }

  /** Ends every session and slave link, then closes the KV. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#abort.abort();
    await Promise.all(this.#sessions);
    for (const s of this.slaves) await s.close();
    this.kv.close();
  }
}
