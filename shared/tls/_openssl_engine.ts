/**
 * The OpenSSL engine: libssl through FFI (`loadOpenSsl()`, needs `--allow-ffi` and
 * `libssl.so.3`). It honours shared session-ticket keys, so a slave's data connection resumes the
 * session of the client's control connection on the master.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, createPrivateKey, hkdfSync } from "node:crypto";
import { isIP } from "node:net";
import { writeAll } from "../bytes.ts";
import { closeQuietly } from "../net.ts";
import { certFingerprint, pemBody, toPem } from "./certificate.ts";
import {
  handshakeDeadline,
  SLAB_BYTES,
  SLAB_MIN_ROOM,
  TlsConn,
  type Transport,
  type TransportSink,
} from "./_connection.ts";
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  type OpenSsl,
  type PlainConn,
  type TlsByteConn,
  type TlsClientOptions,
  type TlsInfo,
  type TlsServerOptions,
} from "./types.ts";

/** Plaintext handed to OpenSSL per SSL_write, so the ciphertext buffer stays small. */
const OPENSSL_WRITE_SLICE = 256 * 1024;

const SSL_SYMBOLS = {
  TLS_server_method: { parameters: [], result: "pointer" },
  TLS_client_method: { parameters: [], result: "pointer" },
  SSL_CTX_new: { parameters: ["pointer"], result: "pointer" },
  SSL_CTX_free: { parameters: ["pointer"], result: "void" },
  SSL_CTX_ctrl: { parameters: ["pointer", "i32", "i64", "pointer"], result: "i64" },
  SSL_CTX_ctrl_buf: {
    name: "SSL_CTX_ctrl",
    parameters: ["pointer", "i32", "i64", "buffer"],
    result: "i64",
  },
  SSL_CTX_set_options: { parameters: ["pointer", "u64"], result: "u64" },
  SSL_CTX_set_cipher_list: { parameters: ["pointer", "buffer"], result: "i32" },
  SSL_CTX_set_timeout: { parameters: ["pointer", "i64"], result: "i64" },
  SSL_CTX_use_certificate: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_CTX_use_PrivateKey: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_CTX_check_private_key: { parameters: ["pointer"], result: "i32" },
  SSL_CTX_set_session_id_context: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  SSL_CTX_set_verify: { parameters: ["pointer", "i32", "pointer"], result: "void" },
  SSL_CTX_get_cert_store: { parameters: ["pointer"], result: "pointer" },
  SSL_CTX_set_default_verify_paths: { parameters: ["pointer"], result: "i32" },
  X509_STORE_add_cert: { parameters: ["pointer", "pointer"], result: "i32" },
  BIO_s_mem: { parameters: [], result: "pointer" },
  BIO_new: { parameters: ["pointer"], result: "pointer" },
  BIO_new_mem_buf: { parameters: ["buffer", "i32"], result: "pointer" },
  BIO_free: { parameters: ["pointer"], result: "i32" },
  BIO_read: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  BIO_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  BIO_ctrl_pending: { parameters: ["pointer"], result: "usize" },
  PEM_read_bio_X509: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "pointer",
  },
  PEM_read_bio_PrivateKey: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "pointer",
  },
  X509_free: { parameters: ["pointer"], result: "void" },
  PEM_write_bio_X509: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_get1_peer_certificate: { parameters: ["pointer"], result: "pointer", optional: true },
  EVP_PKEY_free: { parameters: ["pointer"], result: "void" },
  SSL_new: { parameters: ["pointer"], result: "pointer" },
  SSL_free: { parameters: ["pointer"], result: "void" },
  SSL_set_bio: { parameters: ["pointer", "pointer", "pointer"], result: "void" },
  SSL_set_accept_state: { parameters: ["pointer"], result: "void" },
  SSL_set_num_tickets: { parameters: ["pointer", "usize"], result: "i32" },
  SSL_set_connect_state: { parameters: ["pointer"], result: "void" },
  SSL_do_handshake: { parameters: ["pointer"], result: "i32" },
  SSL_read: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  SSL_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  SSL_get_error: { parameters: ["pointer", "i32"], result: "i32" },
  SSL_shutdown: { parameters: ["pointer"], result: "i32" },
  SSL_get_version: { parameters: ["pointer"], result: "pointer" },
  SSL_get_current_cipher: { parameters: ["pointer"], result: "pointer" },
  SSL_CIPHER_get_name: { parameters: ["pointer"], result: "pointer" },
  SSL_session_reused: { parameters: ["pointer"], result: "i32" },
  SSL_get_session: { parameters: ["pointer"], result: "pointer" },
  SSL_get1_session: { parameters: ["pointer"], result: "pointer" },
  SSL_set_session: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_SESSION_free: { parameters: ["pointer"], result: "void" },
  SSL_SESSION_get_id: { parameters: ["pointer", "buffer"], result: "pointer" },
  PEM_write_bio_SSL_SESSION: { parameters: ["pointer", "pointer"], result: "i32" },
  PEM_read_bio_SSL_SESSION: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "pointer",
  },
  SSL_ctrl_buf: {
    name: "SSL_ctrl",
    parameters: ["pointer", "i32", "i64", "buffer"],
    result: "i64",
  },
  SSL_set1_host: { parameters: ["pointer", "buffer"], result: "i32" },
  SSL_get0_param: { parameters: ["pointer"], result: "pointer" },
  X509_VERIFY_PARAM_set1_ip_asc: { parameters: ["pointer", "buffer"], result: "i32" },
  SSL_get_verify_result: { parameters: ["pointer"], result: "i64" },
  X509_verify_cert_error_string: { parameters: ["i64"], result: "pointer" },
  ERR_get_error: { parameters: [], result: "u64" },
  ERR_error_string_n: { parameters: ["u64", "buffer", "usize"], result: "void" },
  ERR_clear_error: { parameters: [], result: "void" },
  OpenSSL_version: { parameters: ["i32"], result: "pointer" },
  // From libc (a dependency of libssl): reading C memory this way needs no ffi permission at
  // call time, unlike Deno.UnsafePointerView, so the engine works after ffi is revoked.
  strlen: { parameters: ["pointer"], result: "usize" },
  memcpy: { parameters: ["buffer", "pointer", "usize"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

type SslLib = Deno.DynamicLibrary<typeof SSL_SYMBOLS>["symbols"];
type Ptr = Deno.PointerObject;

const SSL_CTRL_MODE = 33;
const SSL_CTRL_SET_TLSEXT_HOSTNAME = 55;
const SSL_CTRL_SET_TLSEXT_TICKET_KEYS = 59;
const SSL_CTRL_CHAIN_CERT = 89;
const SSL_CTRL_SET_MIN_PROTO_VERSION = 123;
const SSL_MODE_RELEASE_BUFFERS = 0x10n;
const SSL_OP_NO_RENEGOTIATION = 1n << 30n;
const SSL_VERIFY_PEER = 1;
const TLS1_2_VERSION = 0x303n;
const TLS1_3_VERSION = 0x304n;
const SSL_ERROR_WANT_READ = 2;
const SSL_ERROR_WANT_WRITE = 3;
const SSL_ERROR_ZERO_RETURN = 6;
/** How long a session (ticket) stays resumable with the OpenSSL engine (OpenSSL: 2 h). */
const SESSION_LIFETIME_SECONDS = 24 * 60 * 60;
/** OpenSSL 3 ticket key material: name 16 + HMAC 32 + AES 32 bytes. */
const OPENSSL_TICKET_KEY_BYTES = 80;

/** NUL-terminated UTF-8 for a C string argument. */
/** The TLS 1.2 suites offered and accepted (OpenSSL cipher-list syntax). */
const TLS12_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" +
  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" +
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

function cString(s: string): Uint8Array {
  return new TextEncoder().encode(s + "\0");
}
export class OpenSslEngine implements OpenSsl {
  #lib: Deno.DynamicLibrary<typeof SSL_SYMBOLS>;
  /** Server contexts by options, so TLS 1.2 session-id caching works within the process. */
  #serverContexts = new Map<string, Ptr>();

  readonly version: string;

  constructor(lib: Deno.DynamicLibrary<typeof SSL_SYMBOLS>) {
    this.#lib = lib;
    this.version = this.cString(lib.symbols.OpenSSL_version(0));
  }

  /** The raw symbols. */
  get ssl(): SslLib {
    return this.#lib.symbols;
  }

  /** A copy of `len` bytes at `p`. */
  bytes(p: Deno.PointerObject, len: number): Uint8Array {
    const out = new Uint8Array(len);
    if (len > 0) this.ssl.memcpy(out, p, BigInt(len));
    return out;
  }

  /** The C string at `p`, or "" for NULL. */
  cString(p: Deno.PointerValue): string {
    if (!p) return "";
    return new TextDecoder().decode(this.bytes(p, Number(this.ssl.strlen(p))));
  }

  /** OpenSSL's error queue as an Error (and clears it). */
  error(what: string): Error {
    const L = this.ssl;
    const parts: string[] = [];
    const buf = new Uint8Array(256);
    for (let e = L.ERR_get_error(); e !== 0n; e = L.ERR_get_error()) {
      L.ERR_error_string_n(e, buf, 256n);
      parts.push(new TextDecoder().decode(buf.subarray(0, buf.indexOf(0))));
    }
    return new Error(parts.length > 0 ? `${what}: ${parts.join("; ")}` : what);
  }

  /** The peer's certificate in PEM, or undefined when it sent none. */
  peerCertificatePem(ssl: Ptr): string | undefined {
    const L = this.ssl;
    const x509 = L.SSL_get1_peer_certificate?.(ssl);
    if (!x509) return undefined;
    const bio = L.BIO_new(L.BIO_s_mem());
    try {
      if (!bio || L.PEM_write_bio_X509(bio, x509) !== 1) return undefined;
      const pem = new Uint8Array(Number(L.BIO_ctrl_pending(bio)));
      L.BIO_read(bio, pem, pem.length);
      return new TextDecoder().decode(pem);
    } finally {
      if (bio) L.BIO_free(bio);
      L.X509_free(x509);
    }
  }

  /** PEM objects of one kind, parsed by OpenSSL. */
  #pem(pem: string, kind: "cert" | "key"): Ptr[] {
    const L = this.ssl;
    const data = new TextEncoder().encode(pem);
    const bio = L.BIO_new_mem_buf(data, data.length);
    if (!bio) throw this.error("BIO_new_mem_buf failed");
    const out: Ptr[] = [];
    try {
      while (true) {
        const p = kind === "cert"
          ? L.PEM_read_bio_X509(bio, null, null, null)
          : L.PEM_read_bio_PrivateKey(bio, null, null, null);
        if (!p) break;
        out.push(p);
        if (kind === "key") break;
      }
    } finally {
      L.BIO_free(bio);
      L.ERR_clear_error(); // the read after the last object fails with "no start line"
    }
    return out;
  }

  /** A server SSL_CTX for `opts`, shared by every connection with the same options. */
  serverContext(opts: TlsServerOptions): Ptr {
    const id = createHash("sha256").update(JSON.stringify([
      opts.cert,
      opts.key,
      opts.minVersion ?? "TLSv1.2",
      opts.ticketKeys ? Buffer.from(opts.ticketKeys).toString("hex") : "",
    ])).digest("hex");
    let ctx = this.#serverContexts.get(id);
    if (!ctx) {
      ctx = this.#newServerContext(opts);
      this.#serverContexts.set(id, ctx);
    }
    return ctx;
  }

  #newServerContext(opts: TlsServerOptions): Ptr {
    const L = this.ssl;
    const ctx = L.SSL_CTX_new(L.TLS_server_method());
    if (!ctx) throw this.error("SSL_CTX_new failed");
    try {
      this.#common(ctx, opts.minVersion);
      const certs = this.#pem(opts.cert, "cert");
      try {
        const leaf = certs.shift();
        if (!leaf) throw new SyntaxError("Invalid certificate: no PEM certificate found");
        const usedLeaf = L.SSL_CTX_use_certificate(ctx, leaf); // takes its own reference
        L.X509_free(leaf);
        if (usedLeaf !== 1) throw this.error("Invalid certificate");
        while (certs.length > 0) {
          // SSL_CTX_add0_chain_cert: on success the context owns the certificate.
          if (L.SSL_CTX_ctrl(ctx, SSL_CTRL_CHAIN_CERT, 0n, certs[0]!) !== 1n) {
            throw this.error("Invalid chain certificate");
          }
          certs.shift();
        }
      } finally {
        for (const unused of certs) L.X509_free(unused);
      }
      // Through node:crypto first: any key format becomes unencrypted PKCS#8, and an encrypted
      // key fails here instead of making OpenSSL prompt for a passphrase on the terminal.
      let pkcs8: string;
      try {
        pkcs8 = createPrivateKey(opts.key).export({ type: "pkcs8", format: "pem" }).toString();
      } catch (err) {
        throw new TypeError("Invalid key: not an unencrypted PEM private key", { cause: err });
      }
      const [pkey] = this.#pem(pkcs8, "key");
      if (!pkey) throw new SyntaxError("Invalid key: no PEM private key found");
      const usedKey = L.SSL_CTX_use_PrivateKey(ctx, pkey);
      L.EVP_PKEY_free(pkey);
      if (usedKey !== 1 || L.SSL_CTX_check_private_key(ctx) !== 1) {
        throw this.error("Invalid key for the certificate");
      }
      const sid = new TextEncoder().encode("drftpd");
      L.SSL_CTX_set_session_id_context(ctx, sid, sid.length);
      // FTP control sessions last for hours; data connections must still resume them.
      L.SSL_CTX_set_timeout(ctx, BigInt(SESSION_LIFETIME_SECONDS));
      if (opts.ticketKeys) {
        const keys = new Uint8Array(
          hkdfSync(
            "sha256",
            opts.ticketKeys,
            "drftpd",
            "session tickets",
            OPENSSL_TICKET_KEY_BYTES,
          ),
        );
        const set = L.SSL_CTX_ctrl_buf(
          ctx,
          SSL_CTRL_SET_TLSEXT_TICKET_KEYS,
          BigInt(keys.length),
          keys,
        );
        if (set !== 1n) throw this.error("Setting the ticket keys failed");
      }
      return ctx;
    } catch (err) {
      L.SSL_CTX_free(ctx);
      throw err;
    }
  }

  /** A client SSL_CTX (one per connection; the SSL keeps it alive). */
  clientContext(opts: TlsClientOptions): Ptr {
    const L = this.ssl;
    const ctx = L.SSL_CTX_new(L.TLS_client_method());
    if (!ctx) throw this.error("SSL_CTX_new failed");
    try {
      this.#common(ctx, opts.minVersion);
      if (!opts.insecure) {
        L.SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, null);
        if (opts.caCerts) {
          const store = L.SSL_CTX_get_cert_store(ctx);
          for (const pem of opts.caCerts) {
            for (const x509 of this.#pem(pem, "cert")) {
              L.X509_STORE_add_cert(store, x509); // takes its own reference
              L.X509_free(x509);
            }
          }
        } else {
          L.SSL_CTX_set_default_verify_paths(ctx);
        }
      }
      return ctx;
    } catch (err) {
      L.SSL_CTX_free(ctx);
      throw err;
    }
  }

  #common(ctx: Ptr, minVersion: "TLSv1.2" | "TLSv1.3" | undefined): void {
    const L = this.ssl;
    const version = minVersion === "TLSv1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
    L.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, version, null);
    L.SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, SSL_MODE_RELEASE_BUFFERS, null);
    L.SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    // Security: TLS 1.2 with forward-secret AEAD suites only (no CBC, no SHA-1 MACs, no static
    // RSA), as rustls (the node:tls engine) does. TLS 1.3 suites are all AEAD already.
    if (L.SSL_CTX_set_cipher_list(ctx, cString(TLS12_CIPHERS)) !== 1) {
      throw new Error("SSL_CTX_set_cipher_list failed");
    }
  }

  close(): void {
    for (const ctx of this.#serverContexts.values()) this.ssl.SSL_CTX_free(ctx);
    this.#serverContexts.clear();
    this.#lib.close();
  }
}

/**
 * Loads libssl (OpenSSL 3) through FFI; needs `--allow-ffi` for this call only: the engine keeps
 * working after `Deno.permissions.revoke({ name: "ffi" })`, which a role should do right after.
 * Throws when the library is missing (Debian's `libssl3`, which `openssl` pulls in; on macOS pass
 * e.g. `"libssl.3.dylib"`).
 */
export function loadOpenSsl(path = "libssl.so.3"): OpenSsl {
  return new OpenSslEngine(Deno.dlopen(path, SSL_SYMBOLS));
}

export function engineOf(engine: OpenSsl): OpenSslEngine {
  if (!(engine instanceof OpenSslEngine)) {
    throw new TypeError("Invalid TLS engine: use the value loadOpenSsl() returned");
  }
  return engine;
}

/** One OpenSSL connection: SSL object, two memory BIOs, the plain connection under it. */
class OpenSslTransport implements Transport {
  #o: OpenSslEngine;
  #conn: PlainConn;
  #ssl: Ptr | null;
  #rbio: Ptr;
  #wbio: Ptr;
  #rbuf = new Uint8Array(64 * 1024);
  #slab = new Uint8Array(0);
  #off = 0;
  #hold: PromiseWithResolvers<void> | null = null;
  #flushing: Promise<void> = Promise.resolve();
  #sink: TransportSink | null = null;
  #resolveClosed!: () => void;
  info: TlsInfo = { protocol: "unknown", cipher: "unknown", resumed: false };
  readonly closed: Promise<void>;

  constructor(o: OpenSslEngine, conn: PlainConn, ctx: Ptr, server: boolean) {
    const L = o.ssl;
    this.#o = o;
    this.#conn = conn;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    const ssl = L.SSL_new(ctx);
    const rbio = L.BIO_new(L.BIO_s_mem());
    const wbio = L.BIO_new(L.BIO_s_mem());
    if (!ssl || !rbio || !wbio) throw o.error("SSL_new failed");
    L.SSL_set_bio(ssl, rbio, wbio); // the SSL owns the BIOs from now on
    if (server) L.SSL_set_accept_state(ssl);
    else L.SSL_set_connect_state(ssl);
    this.#ssl = ssl;
    this.#rbio = rbio;
    this.#wbio = wbio;
  }

  /** The SSL object while the connection is open. */
  get ssl(): Ptr {
    if (!this.#ssl) throw new Deno.errors.BadResource("TLS connection is closed");
    return this.#ssl;
  }

  /** Queues the ciphertext OpenSSL produced for the socket; resolves when all of it is written. */
  #flush(): Promise<void> {
    if (!this.#ssl) return this.#flushing;
    const L = this.#o.ssl;
    const pending = Number(L.BIO_ctrl_pending(this.#wbio));
    if (pending > 0) {
      const out = new Uint8Array(pending);
      const n = L.BIO_read(this.#wbio, out, pending);
      if (n > 0) {
        const chunk = out.subarray(0, n);
        this.#flushing = this.#flushing.then(() => writeAll(this.#conn, chunk));
      }
    }
    return this.#flushing;
  }

  /** Reads ciphertext from the socket into OpenSSL; false at EOF or when closed. */
  async #feed(): Promise<boolean> {
    const n = await this.#conn.read(this.#rbuf);
    if (n === null || !this.#ssl) return false;
    this.#o.ssl.BIO_write(this.#rbio, this.#rbuf, n);
    return true;
  }

  /** Runs the handshake to completion; then fills `info`. */
  async handshake(): Promise<void> {
    const L = this.#o.ssl;
    while (true) {
      L.ERR_clear_error();
      const r = L.SSL_do_handshake(this.ssl);
      const err = r === 1 ? 0 : L.SSL_get_error(this.ssl, r);
      await this.#flush();
      if (r === 1) break;
      if (err !== SSL_ERROR_WANT_READ) {
        const verify = L.SSL_get_verify_result(this.ssl);
        const reason = verify !== 0n
          ? `: certificate verify failed: ${
            this.#o.cString(L.X509_verify_cert_error_string(verify))
          }`
          : "";
        throw this.#o.error(`OpenSSL handshake error ${err}${reason}`);
      }
      if (!(await this.#feed())) throw new Error("connection closed during the handshake");
    }
    const ssl = this.ssl;
    const info: TlsInfo = {
      protocol: this.#o.cString(L.SSL_get_version(ssl)),
      cipher: this.#o.cString(L.SSL_CIPHER_get_name(L.SSL_get_current_cipher(ssl))),
      resumed: L.SSL_session_reused(ssl) === 1,
    };
    const session = L.SSL_get_session(ssl);
    if (session) {
      const len = new Uint32Array(1);
      const id = L.SSL_SESSION_get_id(session, len);
      if (id && len[0]) info.sessionId = Buffer.from(this.#o.bytes(id, len[0])).toString("hex");
    }
    const peer = this.#o.peerCertificatePem(ssl);
    if (peer) info.peerFingerprint = certFingerprint(peer);
    this.info = info;
  }

  start(sink: TransportSink): void {
    this.#sink = sink;
    void this.#pump();
  }

  /** Decrypts what OpenSSL holds; "more" when it needs input, else the stream is over. */
  #drain(sink: TransportSink): "more" | "done" {
    const L = this.#o.ssl;
    while (this.#ssl) {
      if (this.#slab.length - this.#off < SLAB_MIN_ROOM) {
        this.#slab = new Uint8Array(SLAB_BYTES);
        this.#off = 0;
      }
      const room = this.#slab.subarray(this.#off);
      L.ERR_clear_error();
      const n = L.SSL_read(this.#ssl, room, room.length);
      if (n > 0) {
        sink.data(this.#slab.subarray(this.#off, this.#off + n));
        this.#off += n;
        continue;
      }
      const err = L.SSL_get_error(this.#ssl, n);
      void this.#flush().catch(() => {}); // e.g. a KeyUpdate answer; write errors surface there
      if (err === SSL_ERROR_WANT_READ || err === SSL_ERROR_WANT_WRITE) return "more";
      if (err === SSL_ERROR_ZERO_RETURN) {
        sink.end(false); // close_notify
        return "done";
      }
      sink.error(this.#o.error(`TLS read failed (OpenSSL error ${err})`));
      return "done";
    }
    return "done";
  }

  async #pump(): Promise<void> {
    const sink = this.#sink!;
    try {
      while (this.#ssl) {
        if (this.#drain(sink) === "done") return;
        if (this.#hold) {
          await this.#hold.promise;
          continue;
        }
        if (!(await this.#feed())) {
          if (this.#ssl) sink.end(true); // FIN without close_notify
          return;
        }
      }
    } catch (err) {
      if (this.#ssl) sink.error(err as Error);
    }
  }

  pauseReading(): void {
    this.#hold ??= Promise.withResolvers<void>();
  }

  resumeReading(): void {
    const hold = this.#hold;
    this.#hold = null;
    hold?.resolve();
  }

  async write(p: Uint8Array): Promise<void> {
    const L = this.#o.ssl;
    for (let off = 0; off < p.length; off += OPENSSL_WRITE_SLICE) {
      const slice = p.subarray(off, off + OPENSSL_WRITE_SLICE);
      L.ERR_clear_error();
      const n = L.SSL_write(this.ssl, slice, slice.length);
      if (n <= 0) {
        throw this.#o.error(`TLS write failed (OpenSSL error ${L.SSL_get_error(this.ssl, n)})`);
      }
      await this.#flush();
    }
  }

  async shutdownWrite(): Promise<void> {
    if (!this.#ssl) return;
    this.#o.ssl.SSL_shutdown(this.#ssl);
    await this.#flush();
    await this.#conn.closeWrite?.().catch(() => {});
  }

  destroy(): void {
    const ssl = this.#ssl;
    if (!ssl) return;
    this.#ssl = null;
    this.resumeReading();
    closeQuietly(this.#conn);
    this.#o.ssl.SSL_free(ssl); // frees both BIOs
    this.#resolveClosed();
  }

  getSession(): Uint8Array | undefined {
    if (!this.#ssl) return undefined;
    const L = this.#o.ssl;
    const session = L.SSL_get1_session(this.#ssl);
    if (!session) return undefined;
    const bio = L.BIO_new(L.BIO_s_mem());
    try {
      if (!bio || L.PEM_write_bio_SSL_SESSION(bio, session) !== 1) return undefined;
      const pem = new Uint8Array(Number(L.BIO_ctrl_pending(bio)));
      L.BIO_read(bio, pem, pem.length);
      return pemBody(new TextDecoder().decode(pem), "SSL SESSION PARAMETERS");
    } finally {
      if (bio) L.BIO_free(bio);
      L.SSL_SESSION_free(session);
    }
  }
}

function openSslHandshake(
  o: OpenSslEngine,
  conn: PlainConn,
  ctx: Ptr,
  server: boolean,
  setup: (t: OpenSslTransport) => void,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<TlsByteConn> {
  let transport: OpenSslTransport | undefined;
  try {
    transport = new OpenSslTransport(o, conn, ctx, server);
    setup(transport);
  } catch (err) {
    if (transport) transport.destroy();
    else closeQuietly(conn);
    return Promise.reject(err);
  }
  const t = transport;
  return handshakeDeadline(
    async () => {
      await t.handshake();
      return new TlsConn(t);
    },
    () => t.destroy(),
    timeoutMs,
    signal,
  );
}

export function openSslServer(
  o: OpenSslEngine,
  conn: PlainConn,
  opts: TlsServerOptions,
): Promise<TlsByteConn> {
  let ctx: Ptr;
  try {
    ctx = o.serverContext(opts);
  } catch (err) {
    closeQuietly(conn);
    return Promise.reject(err);
  }
  return openSslHandshake(
    o,
    conn,
    ctx,
    true,
    (t) => {
      if (opts.issueTickets === false) o.ssl.SSL_set_num_tickets(t.ssl, 0n);
    },
    opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    opts.signal,
  );
}

export function openSslClient(
  o: OpenSslEngine,
  conn: PlainConn,
  host: string | undefined,
  servername: string | undefined,
  opts: TlsClientOptions,
): Promise<TlsByteConn> {
  const L = o.ssl;
  let ctx: Ptr;
  try {
    ctx = o.clientContext(opts);
  } catch (err) {
    closeQuietly(conn);
    return Promise.reject(err);
  }
  const setup = (t: OpenSslTransport) => {
    const ssl = t.ssl;
    if (servername !== undefined) {
      L.SSL_ctrl_buf(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, 0n, cString(servername));
    }
    if (!opts.insecure) {
      const name = servername ?? host;
      if (name !== undefined && isIP(name) !== 0) {
        L.X509_VERIFY_PARAM_set1_ip_asc(L.SSL_get0_param(ssl), cString(name));
      } else if (name !== undefined) {
        L.SSL_set1_host(ssl, cString(name));
      }
    }
    if (opts.session) {
      const pem = new TextEncoder().encode(toPem("SSL SESSION PARAMETERS", opts.session));
      const bio = L.BIO_new_mem_buf(pem, pem.length);
      const session = bio && L.PEM_read_bio_SSL_SESSION(bio, null, null, null);
      if (bio) L.BIO_free(bio);
      if (!session) throw o.error("Invalid TLS session");
      L.SSL_set_session(ssl, session); // takes its own reference
      L.SSL_SESSION_free(session);
    }
  };
  try {
    return openSslHandshake(
      o,
      conn,
      ctx,
      false,
      setup,
      opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      opts.signal,
    );
  } finally {
    L.SSL_CTX_free(ctx); // the SSL holds its own reference
  }
}
