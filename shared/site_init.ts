/**
 * `drftpd init`: the commented master.toml and slave.toml it writes. Pure text builders; the
 * command itself (files, admin user) lives in `main.ts`.
 *
 * @module
 */

/** What the generated files are filled in with. */
export interface InitValues {
  /** The link secret both files share. */
  secret: string;
}

/** A commented master.toml that works as written (relative paths resolve against its folder). */
export function masterToml(values: InitValues): string {
  return `# drftpd master configuration, written by "drftpd init".
# Every key is listed; commented ones show their default. Relative paths resolve against the
# folder of this file. Check it with: drftpd config check --config master.toml

[master]
# Filelist and users (Deno KV), TLS certificate, xferlog.
data_dir = "master"

[ftp]
# FTP control port. Below 1024 needs root or CAP_NET_BIND_SERVICE.
listen = "0.0.0.0:2121"
# Ports of data connections the master serves itself (listings, relay). Open them in the firewall;
# keep them apart from every slave's passive_ports.
passive_ports = "50000-50099"
# Address announced in PASV for those; "" = the address the client connected to. Set it behind NAT.
# public_address = ""
# PASV without PRET: "slave" (a slave chosen from what the client looked at last listens),
# "relay" (the master carries the bytes) or "reject".
# pasv_without_pret = "slave"
# EPSV without PRET when that slave is on another address: "pasv" (refused, so clients fall back
# to PASV, which names the slave) or "master" (relayed; tnftp needs it, it refuses a 227 that
# names another host than the one it connected to).
# epsv_without_pret = "pasv"
# idle_timeout = 900
# login_timeout = 60
# max_connections = 2000
# max_connections_per_address = 10
# max_login_failures = 3
# failed_login_delay_ms = 1000
# ban_after_failures = 10
# ban_seconds = 300
# Failed logins of one account (from any address) lock it for account_lock_seconds; checks of
# one account run one at a time, waiting up to account_max_delay_seconds after each failure.
# account_lock_after = 10
# account_lock_seconds = 900
# account_max_delay_seconds = 30
# banner = "drftpd ready"
# Server-to-server transfers: "deny" or "allow" ([[ftp.fxp_rules]] refine it; see the README).
# fxp = "deny"
# "off", "optional" (AUTH TLS offered) or "required".
# tls = "optional"
# PEM files; "" = a self-signed certificate made on first start in data_dir/tls.
# tls_cert = ""
# tls_key = ""
# Implicit FTPS (TLS from the first byte), e.g. "0.0.0.0:990"; "" = off.
# implicit_tls_listen = ""
# Seconds a stop (SIGINT/SIGTERM) lets running transfers finish.
# stop_grace = 30

[http]
# Status page (/), Prometheus metrics (/metrics) and /healthz; "" = off. Bound to anything but
# loopback, it asks for the login of an admin user (HTTP basic auth: use it behind TLS).
listen = "127.0.0.1:9121"

[slaves]
# Where slaves connect.
listen = "0.0.0.0:1099"
# Shared with every slave.toml; keep it secret.
secret = "${values.secret}"
# tls = true
# partial_remerge = true
# [[replication]] copies one slave sends or receives at once ([slaves.copies] per slave).
# copies_per_slave = 2
# copies = {}  # copies_per_slave of named slaves, e.g. { slave3 = 4 }
# ... and while it also serves client transfers (copies yield to clients).
# copies_while_busy = 1
# Seconds a slave may be offline before its files are copied elsewhere ([[replication]]).
# heal_after = 600
# Seconds a new link connection has to finish TLS and prove the secret.
# handshake_timeout = 10
# Seconds without a frame from a slave before it is passed over for new transfers (PASV answers
# from another slave), and before it is dropped (its transfers end with 426).
# unresponsive_after = 3
# drop_after = 10

[selection]
# How the master picks a slave (see the README): slaves with less free space (bytes) take no
# uploads or copies; at most max_transfers transfers per slave (0 = unlimited).
# min_free = 67108864
# max_transfers = 0
# Score: weight_free * free share - weight_transfers * transfers - weight_throughput * busy share.
# weight_free = 1
# weight_transfers = 3
# weight_throughput = 1
# Path rules: [[selection.rules]] tables with path and prefer, only or exclude (slave names).

[log]
# "debug", "info", "warning" or "error".
level = "info"
# "text" or "json" (one JSON object per line).
# format = "text"
# wu-ftpd xferlog, one line per transfer; "" = data_dir/xferlog, "off" = none.
# xferlog = ""

# Path permissions: [[permissions]] tables (see the README), first matching rule wins.
# Copies: [[replication]] tables with path and copies (see the README).
`;
}

/** A commented slave.toml for a slave on the master's host (edit `master` for another host). */
export function slaveToml(values: InitValues): string {
  return `# drftpd slave configuration, written by "drftpd init".
# Every key is listed; commented ones show their default. Relative paths resolve against the
# folder of this file. Check it with: drftpd config check --config slave.toml

[slave]
# Unique among the master's slaves.
name = "slave1"
# The master's [slaves] listen address.
master = "127.0.0.1:1099"
secret = "${values.secret}"
# Where this slave keeps its files.
root = "slave1"
# Address data sockets bind to, and the one announced to clients ("" = listen_address, or the
# address of the link to the master when that is 0.0.0.0). Set public_address behind NAT.
listen_address = "0.0.0.0"
# public_address = ""
# Ports of this slave's data connections; disjoint from the master's and other slaves' on one host.
passive_ports = "50100-50199"
# tls = true
# "sha256:<hex>" pins the master's certificate; "" accepts any and logs its fingerprint.
# master_fingerprint = ""
# tls_cert = ""
# tls_key = ""
# "native" or "zero_copy" (Linux sendfile/recv through libc) for plain transfers.
# data_engine = "native"
# Seconds a stop (SIGINT/SIGTERM) lets running transfers finish; new ones are refused meanwhile.
# stop_grace = 30

[log]
level = "info"
# format = "text"
`;
}
