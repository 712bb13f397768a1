/**
 * The validated shapes of master.toml and slave.toml. `shared/config.ts` loads, validates and resolves them.
 * Paths here are already absolute (resolved against the config file's folder).
 */

/** A host and port to listen on or dial, as parsed from "host:port" ("[::1]:21" for IPv6). */
export interface HostPort {
  host: string;
  port: number;
}

/** An inclusive port range parsed from "50000-50099". */
export interface PortRange {
  from: number;
  to: number;
}

/** One `[[ftp.fxp_rules]]` entry: FXP allowed or not under a path glob, per direction. */
export interface FxpRule {
  /** Glob over virtual paths: `*` matches within one name, `**` across folders. */
  path: string;
  /** FXP uploads (a third party sends us the file) allowed under this path. Default true. */
  upload: boolean;
  /** FXP downloads (we send the file to a third party) allowed under this path. Default true. */
  download: boolean;
}

/** The actions a `[[permissions]]` rule can name. */
export const PATH_ACTIONS = [
  "list",
  "download",
  "upload",
  "makedir",
  "delete",
  "delete_own",
  "rename",
  "rename_own",
  "overwrite",
  "fxp_upload",
  "fxp_download",
] as const;

/** One of {@link PATH_ACTIONS}. */
export type PathAction = typeof PATH_ACTIONS[number];

/** Who a permission names: anyone logged in, a group, or a user; `negate` refuses instead. */
export interface Subject {
  negate: boolean;
  kind: "any" | "group" | "user";
  /** The group or user name ("" for any). */
  name: string;
}

/** One `[[permissions]]` entry of master.toml. */
export interface PermissionRule {
  /** Glob over virtual paths: `*` within one name, `**` across folders (`/a/**` matches `/a`). */
  path: string;
  /** The subjects per action this rule names. */
  actions: Partial<Record<PathAction, Subject[]>>;
}

/** One `[[replication]]` entry of master.toml: files under `path` are kept on `copies` slaves. */
export interface ReplicationRule {
  /** Glob over virtual paths, as in `[[permissions]]` (`/archive/**`). */
  path: string;
  /** Distinct online slaves each matching file should be on (1–16). */
  copies: number;
}

/** One `[[selection.rules]]` entry: which slaves take files under a path glob. */
export interface SelectionRule {
  /** Glob over virtual paths, as in `[[permissions]]` (`/hd/**`). */
  path: string;
  /** Slaves chosen first when one of them can take the file. */
  prefer: string[];
  /** When not empty, the only slaves that may take the file. */
  only: string[];
  /** Slaves that never take the file. */
  exclude: string[];
}

/** `[selection]` of master.toml: how the master picks slaves (see `master/slaves/selection.ts`). */
export interface SelectionConfig {
  /** Free bytes below which a slave takes no uploads and no copies. Default 64 MiB. */
  min_free: number;
  /** Transfers (client transfers and copies) one slave runs at once; 0 = unlimited. Default 0. */
  max_transfers: number;
  /** Weight of the free-space term (uploads and copies). Default 1. */
  weight_free: number;
  /** Weight of the active-transfers term (per transfer). Default 3. */
  weight_transfers: number;
  /** Weight of the recent-throughput term. Default 1. */
  weight_throughput: number;
  /** Path rules, first match wins. Default none. */
  rules: SelectionRule[];
}

/** Validated master.toml. */
export interface MasterConfig {
  /** Absolute path of the file this came from, or null for built-in defaults. */
  file: string | null;
  master: {
    /** Folder holding the KV filelist (`filelist.kv`) and other master state. Default "data/master". */
    data_dir: string;
  };
  ftp: {
    /** Default 0.0.0.0:2121. */
    listen: HostPort;
    /** Ports for data connections the master serves itself (listings, relay). Default 50000-50099. */
    passive_ports: PortRange;
    /** Address announced in PASV for master-served data; "" = control connection's local address. */
    public_address: string;
    /**
     * What PASV/EPSV without PRET does: "slave" (default: a slave chosen from the session's hints
     * listens), "relay" (the master relays, unless exactly one slave is available) or "reject"
     * (5xx naming PRET).
     */
    pasv_without_pret: "slave" | "relay" | "reject";
    /**
     * With `pasv_without_pret = "slave"`, what EPSV without PRET does when the chosen slave is on
     * another address than the control connection: "pasv" (default: 425, so the client falls
     * back to PASV, which names the slave) or "master" (the master serves it and relays the
     * bytes; for clients such as tnftp that refuse a 227 naming another host).
     */
    epsv_without_pret: "pasv" | "master";
    /** Seconds a logged-in session may stay idle. Default 900. */
    idle_timeout: number;
    /** Seconds before login completes. Default 60. */
    login_timeout: number;
    /** Most control connections at once. Default 2000. */
    max_connections: number;
    /** Most control connections at once from one client address. Default 10. */
    max_connections_per_address: number;
    /** Failed logins on one connection before it is closed. Default 3. */
    max_login_failures: number;
    /** Wait before answering a failed login, ms. Default 1000. */
    failed_login_delay_ms: number;
    /** Failed logins from one address within `ban_seconds` that ban it (0 = never). Default 10. */
    ban_after_failures: number;
    /** Window for `ban_after_failures`, seconds; a ban lasts until the failures leave it. Default 300. */
    ban_seconds: number;
    /** Failed logins of one account, from any addresses, that lock it (0 = never). Default 10. */
    account_lock_after: number;
    /** How long such a lock lasts, seconds (`drftpd user unlock` lifts it). Default 900. */
    account_lock_seconds: number;
    /** Longest wait between two checked attempts on one account, seconds. Default 30. */
    account_max_delay_seconds: number;
    /** Greeting text on 220. Default "drftpd ready". */
    banner: string;
    /** Server-to-server transfers (data peer ≠ client): "deny" (default) or "allow". */
    fxp: "allow" | "deny";
    /** Per-path FXP rules; the first rule whose glob matches decides. Default none. */
    fxp_rules: FxpRule[];
    /** FTPS policy: "off", "optional" (default) or "required" (login and data only over TLS). */
    tls: "off" | "optional" | "required";
    /** PEM certificate file; "" = a self-signed one generated into data_dir on first start. */
    tls_cert: string;
    /** PEM private key file; "" = generated with the certificate. */
    tls_key: string;
    /** Implicit FTPS listener (TLS from the first byte), e.g. "0.0.0.0:990"; null = off. */
    implicit_tls_listen: HostPort | null;
    /** Seconds a stop (SIGINT/SIGTERM) waits for running transfers before closing them. */
    stop_grace: number;
  };
  http: {
    /** Status page, /metrics and /healthz; null = off. */
    listen: HostPort | null;
  };
  slaves: {
    /** Default 0.0.0.0:1099. */
    listen: HostPort;
    /** Shared secret proving a slave may join. Default "change-me" (a warning is logged). */
    secret: string;
    /** The slave link runs over TLS with the master's certificate. Default true. */
    tls: boolean;
    /**
     * A reconnecting slave lists only the directories changed since its last completed remerge
     * (a file rewritten in place in an unchanged directory is missed until a full one). Default true.
     */
    partial_remerge: boolean;
    /** Copies (`[[replication]]`) one slave sends or receives at once. Default 2. */
    copies_per_slave: number;
    /**
     * `[slaves.copies]`: `copies_per_slave` for named slaves (`slave3 = 4`; 0 = this slave takes
     * part in no replication copy). Default none.
     */
    copies: Record<string, number>;
    /**
     * Copies a slave takes part in at once while it serves client transfers (at most
     * `copies_per_slave`; 0 = copies wait until its client transfers end). Default 1.
     */
    copies_while_busy: number;
    /** Seconds a holder may be offline before its files are copied elsewhere. Default 600. */
    heal_after: number;
    /**
     * Seconds a connection to the link port has to finish TLS and prove the secret; it is
     * closed then. Default 10.
     */
    handshake_timeout: number;
    /**
     * Seconds without a frame (slaves send one every second) after which a slave is not
     * responding: it is not chosen for new transfers and its pending short requests (PASV's
     * `listen`, deletes, renames) fail, so another slave answers. Default 3.
     */
    unresponsive_after: number;
    /**
     * Seconds without a frame after which the master drops the slave: its transfers end with 426
     * and the data connections the master relays or proxies for it close. Default 10.
     */
    drop_after: number;
  };
  /** How slaves are picked for transfers and copies. */
  selection: SelectionConfig;
  log: {
    /** "debug" | "info" | "warning" | "error". Default "info". */
    level: "debug" | "info" | "warning" | "error";
    /** "text": one readable line per record; "json": one JSON object per line. */
    format: "text" | "json";
    /** The wu-ftpd xferlog file; "" = `data_dir/xferlog`; null = off. */
    xferlog: string | null;
  };
  /** `[[permissions]]`: path rules, first match naming the action wins. Default none. */
  permissions: PermissionRule[];
  /** `[[replication]]`: copies per path, first matching rule wins. Default none (one copy). */
  replication: ReplicationRule[];
}

/** Validated slave.toml. */
export interface SlaveConfig {
  file: string | null;
  slave: {
    /** Unique slave name, [A-Za-z0-9_.-]{1,64}. Default "slave1". */
    name: string;
    /** Master's link address, default 127.0.0.1:1099. */
    master: HostPort;
    secret: string;
    /** Storage root (created if missing). Default "data/slave1". */
    root: string;
    /** Where data sockets bind. Default "0.0.0.0". */
    listen_address: string;
    /** Announced in PASV; "" = listen_address when concrete, else the local address of the link to the master. */
    public_address: string;
    /** Default 50100-50199. */
    passive_ports: PortRange;
    /** Dial the master over TLS (must match the master's [slaves] tls). Default true. */
    tls: boolean;
    /** Pin the master's certificate: "sha256:<hex>"; "" = accept any and log its fingerprint. */
    master_fingerprint: string;
    /** PEM certificate for TLS data connections; "" = self-signed, generated next to the root. */
    tls_cert: string;
    /** PEM private key; "" = generated with the certificate. */
    tls_key: string;
    /** What moves plain data-connection bytes: Deno's APIs, or sendfile/recv through libc. */
    data_engine: "native" | "zero_copy";
    /** Seconds a stop (SIGINT/SIGTERM) lets running transfers finish. Default 30. */
    stop_grace: number;
  };
  log: {
    level: "debug" | "info" | "warning" | "error";
    format: "text" | "json";
  };
}
