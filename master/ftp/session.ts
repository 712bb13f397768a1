/**
 * One FTP control connection: its state, its reply writer and its read loop.
 * What each command does lives in the command table (`commands.ts`); the checks in `dispatcher.ts`.
 */
import type { AccountGuard, LoginGuard } from "../auth/login_guard.ts";
import { getLogger } from "@logtape/logtape";
import type { ReloadResult } from "../config_reload.ts";
import type { MasterConfig } from "../../shared/config_types.ts";
import type { ByteConn } from "../../shared/link.ts";
import { type PlainConn, type TlsByteConn, upgradeToTlsServer } from "../../shared/tls/mod.ts";
import { type Action, permits } from "../auth/permissions.ts";
import type { MasterTls } from "../tls_material.ts";
import { normalize } from "../../shared/paths.ts";
import type { User, UserStore } from "../auth/users.ts";
import type { PathPolicy } from "../auth/path_rules.ts";
import type { SessionRegistry } from "./session_registry.ts";
import type { Filelist } from "../filelist/types.ts";
import type { SlaveRegistry } from "../slaves/registry.ts";
import type { PathLocks } from "../path_locks.ts";
import type { SlaveHandle } from "../slaves/slave_handle.ts";
import type { DataChannel } from "./data_channel.ts";
import type { PasvProxy } from "./pasv_proxy.ts";
import { ControlLineReader, LineTooLongError } from "./line_reader.ts";
import { formatReply, NOT_AVAILABLE_CLOSING, READY_FOR_NEW_USER, SYNTAX_ERROR } from "./replies.ts";
import type { SiteMetrics } from "../metrics.ts";
import { writeAll } from "../../shared/bytes.ts";
import { closeQuietly, isHangUp } from "../../shared/net.ts";
import type { Replicator } from "../slaves/replication.ts";

const log = getLogger(["drftpd", "master", "ftp"]);

/** Everything a session needs from the master, passed in. */
export interface MasterServices {
  config: MasterConfig;
  filelist: Filelist;
  users: UserStore;
  /** Failed logins per client address, and the bans they cause. */
  loginGuard: LoginGuard;
  /** Failed logins per account, and the slowdowns and locks they cause. */
  accountGuard: AccountGuard;
  slaves: SlaveRegistry;
  /** Open sessions of every FTP listener (connection limits, SITE WHO, SITE KICK). */
  sessions: SessionRegistry<Session>;
  /** The `[[permissions]]` of master.toml, compiled. */
  paths: PathPolicy;
  /** Orders transfers and namespace changes on the same path (`master/path_locks.ts`). */
  locks: PathLocks;
  /** TLS material, or null when `[ftp] tls = "off"`. */
  tls: MasterTls | null;
  signal: AbortSignal;
  /**
   * A stop was asked (fires before `signal`): accept nothing new, end idle sessions, and end the
   * others once their running transfer is done (`signal` then ends whatever is left).
   */
  stopping: AbortSignal;
  /** Counters and running transfers (status page, /metrics, xferlog). */
  metrics: SiteMetrics;
  /** `[[replication]]`: told about every completed upload. */
  replication?: Replicator;
  /** Re-reads master.toml and applies its reloadable parts (`config_reload.ts`); SITE RELOAD. */
  reload?: () => Promise<ReloadResult>;
}

/** A control connection: a byte stream with its two addresses (a `Deno.Conn`, or a test double). */
export interface ControlConn extends PlainConn {
  readonly remoteAddr: Deno.Addr;
  readonly localAddr: Deno.Addr;
}

/** What a PRET announced. */
export interface Pret {
  /** The verb, upper-cased (a command-table row with a PRET kind: RETR, STOR, LIST…). */
  verb: string;
  /**
   * "download", "upload" or "list"; "any" when no PRET was sent and PASV/EPSV was answered by a
   * slave chosen from the session's hint (it then serves any transfer, and listings the master
   * generates).
   */
  kind: "download" | "upload" | "list" | "any";
  /** Normalised path ("" arguments resolve to the cwd). */
  path: string;
  /** The slave picked for it by a first PASV/EPSV, reused if the client asks again. */
  chosen?: SlaveHandle;
}

/** How the next data connection will be made. */
export type DataPlan =
  /** A slave listens (PRET + PASV/EPSV): the transfer must use that slave. */
  | {
    kind: "slave";
    slave: SlaveHandle;
    xfer: string;
    pret: Pret;
    proxy?: PasvProxy;
    /** `performance.now()` when PASV/EPSV prepared it (the per-address passive quota). */
    preparedAt?: number;
  }
  /** The master listens (listings, or relay for clients without PRET). */
  | { kind: "master"; channel: DataChannel & { port: number }; preparedAt?: number }
  /** The client listens (PORT/EPRT). */
  | { kind: "active"; host: string; port: number };

/** TLS settings of the session's data connections. */
export interface DataSecurity {
  /** PROT P: data connections are TLS. */
  protect: boolean;
  /** We are the TLS client (SSCN ON, or this CPSV), for secure FXP. */
  asClient: boolean;
}

/** A transfer in progress on this session. */
export interface RunningTransfer {
  done: Promise<void>;
  abort(): void;
}

/** One FTP control connection. */
export class Session {
  /** The master's services; once a user logs in, `filelist` is what that user may see. */
  services: MasterServices;
  readonly id: number;
  /** The client's IP address. */
  readonly remoteHost: string;
  /** Our address on the control connection. */
  readonly localHost: string;
  user: User | null = null;
  /** The running file transfer's direction (simultaneous-transfer limits, SITE WHO). */
  runningKind: "upload" | "download" | null = null;
  /** The running file transfer: its path, link id and start (SITE WHO). */
  running: { path: string; xfer: string; started: number } | null = null;
  /** The last command's verb and when it came (Date.now()), for SITE WHO. */
  lastCommand = { verb: "", at: Date.now() };
  pendingUser: string | null = null;
  cwd = "/";
  type: "A" | "I" = "A";
  rest = 0;
  renameFrom: string | null = null;
  pret: Pret | null = null;
  /**
   * What the client looked at last (SIZE, MDTM, MLST, CWD, CDUP): a PASV without PRET asks a
   * holder of that file, or the best slave for an upload into that folder, to listen.
   */
  hint: string | null = null;
  data: DataPlan | null = null;
  epsvAll = false;
  transfer: RunningTransfer | null = null;
  /** Set by QUIT: the loop ends after the current reply. */
  quitting = false;
  /** Failed PASS attempts on this connection. */
  loginFailures = 0;
  /** The control connection is TLS (AUTH TLS done, or implicit FTPS). */
  secure = false;
  /** PBSZ was sent after AUTH. */
  pbsz = false;
  /** PROT level: "C" clear or "P" private. */
  prot: "C" | "P" = "C";
  /** SSCN ON: act as TLS client on data connections. */
  sscn = false;
  /** CPSV: be the TLS client on the next data connection only. */
  cpsv = false;
  /**
   * The session asked for FXP explicitly (SSCN ON, CPSV, or a PORT/EPRT to another server):
   * only then may a third party connect to a passive port prepared for it (`fxpPeer`).
   */
  fxpAsked = false;

  #raw: ControlConn;
  #conn: ByteConn;
  #reader: ControlLineReader;
  #writing: Promise<void> = Promise.resolve();
  #encoder = new TextEncoder();
  #closed = false;

  /** Wraps an accepted control connection. */
  constructor(conn: ControlConn, services: MasterServices, id: number) {
    this.#raw = conn;
    this.#conn = conn;
    this.#reader = new ControlLineReader(conn, { maxLineBytes: 4096 });
    this.services = services;
    this.id = id;
    this.remoteHost = (conn.remoteAddr as Deno.NetAddr).hostname;
    this.localHost = (conn.localAddr as Deno.NetAddr).hostname;
  }

  /** Sends one reply; writes are serialised so replies never interleave. */
  reply(code: number, text: string | readonly string[]): Promise<void> {
    const bytes = this.#encoder.encode(formatReply(code, text));
    const next = this.#writing.then(async () => {
      if (this.#closed) return;
      try {
        await writeAll(this.#conn, bytes);
      } catch (e) {
        if (!isHangUp(e)) throw e;
        // The client went away: not an error of ours; the read loop ends on its own.
        log.info("{who} hung up ({error})", { who: this.who, error: e.name });
        this.close();
      }
    });
    this.#writing = next.catch(() => {});
    return next;
  }

  /**
   * Upgrades the control connection to TLS (after the 234 reply, or at once for implicit FTPS).
   * Security: bytes already buffered after AUTH would have been sent in the clear and then be
   * read as if protected (command injection), so the session ends instead.
   */
  async startTls(): Promise<TlsByteConn> {
    const tls = this.services.tls;
    if (!tls) throw new Error("TLS is off");
    if (this.#reader.buffered > 0) {
      throw new Error("Plaintext after AUTH TLS; closing");
    }
    const conn = await upgradeToTlsServer(this.#raw, {
      cert: tls.cert,
      key: tls.key,
      ticketKeys: tls.ticketSecret,
      ...(tls.engine ? { engine: tls.engine } : {}),
      signal: this.services.signal,
      handshakeTimeoutMs: this.services.config.ftp.login_timeout * 1000,
    });
    this.#conn = conn;
    this.#reader = new ControlLineReader(conn, { maxLineBytes: 4096 });
    this.secure = true;
    return conn;
  }

  /** How the next data connection is secured; consumes a CPSV. */
  takeDataSecurity(): DataSecurity {
    const asClient = this.sscn || this.cpsv;
    this.cpsv = false;
    return { protect: this.prot === "P", asClient };
  }

  /** Resolves a client path argument against the cwd (throws PathError). */
  resolve(arg: string): string {
    return normalize(this.cwd, arg);
  }

  /**
   * Whether the logged-in user may do `action` on `path` (null: FXP before the path is known).
   * Every permission decision of the session goes through here to `permits`.
   */
  may(action: Action, path: string | null): Promise<boolean> {
    if (!this.user) return Promise.resolve(false);
    const { filelist, config, paths } = this.services;
    return permits(this.user, { action, path }, { filelist, fxp: config.ftp, paths });
  }

  /** Who to log: the user name or the client address. */
  get who(): string {
    return this.user?.name ?? `#${this.id}@${this.remoteHost}`;
  }

  /** Drops any prepared data connection (a slave's passive port is released too). */
  clearData(): void {
    const plan = this.data;
    this.data = null;
    if (!plan) return;
    if (plan.kind === "master") plan.channel.close();
    if (plan.kind === "slave") {
      plan.proxy?.close();
      plan.slave.request("abort", { xfer: plan.xfer }).catch(() => {});
    }
  }

  /**
   * Runs the command loop until the client quits, the connection drops or the master stops.
   * With `implicitTls` the connection is TLS from the first byte (implicit FTPS, PROT P).
   */
  async run(
    dispatch: (s: Session, line: string) => Promise<void>,
    options: { implicitTls?: boolean } = {},
  ): Promise<void> {
    const cfg = this.services.config.ftp;
    // The idle timer is re-armed lazily: a command only records the time (cheap on a hot loop).
    // Security: before login the deadline counts from the accept, not from the last command, so
    // a connection that never proves itself is closed even if it keeps talking.
    const accepted = performance.now();
    let last = accepted;
    let idle: ReturnType<typeof setTimeout> | undefined;
    const arm = (ms: number) => {
      idle = setTimeout(() => {
        const secs = this.user ? this.user.idleTimeout || cfg.idle_timeout : cfg.login_timeout;
        const left = secs * 1000 - (performance.now() - (this.user ? last : accepted));
        if (this.transfer || left > 0) return arm(this.transfer ? secs * 1000 : left);
        log.info("Closing idle session {who}", { who: this.who });
        const why = this.user ? `Idle for ${secs} seconds` : `No login within ${secs} seconds`;
        this.reply(NOT_AVAILABLE_CLOSING, `${why}; closing control connection`)
          .finally(() => this.close());
      }, ms);
    };
    const onAbort = () => {
      this.reply(NOT_AVAILABLE_CLOSING, "Server shutting down").finally(() => this.close());
    };
    // Graceful stop: a running transfer finishes (and gets its 226) before the 421.
    const onStopping = () => {
      const t = this.transfer;
      if (t) t.done.catch(() => {}).finally(onAbort);
      else onAbort();
    };
    this.services.signal.addEventListener("abort", onAbort, { once: true });
    this.services.stopping.addEventListener("abort", onStopping, { once: true });
    try {
      arm(cfg.login_timeout * 1000);
      if (options.implicitTls) {
        try {
          await this.startTls();
        } catch (e) {
          log.info("Implicit TLS handshake with {ip} failed: {error}", {
            ip: this.remoteHost,
            error: e instanceof Error ? e.message : String(e),
          });
          return;
        }
        this.pbsz = true;
        this.prot = "P";
      }
      await this.reply(READY_FOR_NEW_USER, cfg.banner);
      while (!this.quitting) {
        let line: string | null;
        try {
          line = await this.#reader.readLine();
        } catch (e) {
          if (e instanceof LineTooLongError) {
            await this.reply(SYNTAX_ERROR, "Command line too long; closing control connection");
          }
          break;
        }
        if (line === null) break;
        last = performance.now();
        this.lastCommand = {
          verb: line.split(" ", 1)[0]!.toUpperCase().slice(0, 16),
          at: Date.now(),
        };
        const before = this.user;
        await dispatch(this, line);
        if (this.user !== before && this.user?.idleTimeout) {
          // A user's own idle timeout counts from the login, not from the login timer.
          clearTimeout(idle);
          arm(this.user.idleTimeout * 1000);
        }
      }
    } finally {
      clearTimeout(idle);
      this.services.signal.removeEventListener("abort", onAbort);
      this.services.stopping.removeEventListener("abort", onStopping);
      this.transfer?.abort();
      await this.transfer?.done.catch(() => {});
      this.clearData();
      await this.#writing;
      this.close();
    }
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the control connection; safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#conn);
  }
}
