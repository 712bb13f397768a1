/**
 * Certificates: a self-signed ECDSA P-256 certificate built in DER by hand (for first start),
 * kept on disk (`ensureSelfSignedCert`), and SHA-256 fingerprints for pinning.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  X509Certificate,
} from "node:crypto";
import { isIP } from "node:net";
import { concat } from "../bytes.ts";
import type { CertPair } from "./types.ts";

/** The DER bytes of the first PEM block labelled `label`, or undefined. */
export function pemBody(pem: string, label: string): Uint8Array | undefined {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(pem);
  return m?.[1] ? new Uint8Array(Buffer.from(m[1].replace(/\s+/g, ""), "base64")) : undefined;
}

/** DER bytes of the first certificate in a PEM text. */
function pemToDer(pem: string): Uint8Array {
  const der = pemBody(pem, "CERTIFICATE");
  if (!der) throw new SyntaxError("Invalid certificate: no PEM CERTIFICATE block found");
  return der;
}

/** `"sha256:"` + lowercase hex SHA-256 of the DER form of the first certificate in `pem`. */
export function certFingerprint(pem: string): string {
  return derFingerprint(pemToDer(pem));
}

/** `"sha256:"` + lowercase hex SHA-256 of a DER certificate. */
export function derFingerprint(der: Uint8Array): string {
  return "sha256:" + createHash("sha256").update(der).digest("hex");
}

/**
 * Loads `dir/cert.pem` and `dir/key.pem`, or, when neither exists, creates a self-signed
 * certificate for `commonName` (EC P-256, ECDSA-SHA256, 10 years, SAN DNS:commonName (or IP when
 * it is an address) and IP:127.0.0.1, CA:FALSE, serverAuth) and writes them (key mode 0600).
 * Generated with `node:crypto`: no `openssl` binary and no npm package needed.
 * Throws when only one of the two files exists or when the key does not match the certificate.
 */
export async function ensureSelfSignedCert(dir: string, commonName: string): Promise<CertPair> {
  const certPath = `${dir}/cert.pem`;
  const keyPath = `${dir}/key.pem`;
  const [cert, key] = await Promise.all([readIfExists(certPath), readIfExists(keyPath)]);
  if (cert !== null && key !== null) {
    const x509 = new X509Certificate(cert);
    if (!x509.checkPrivateKey(createPrivateKey(key))) {
      throw new Error(`Key does not match certificate: "${keyPath}"`);
    }
    return { cert, key, fingerprint: certFingerprint(cert) };
  }
  if (cert !== null || key !== null) {
    throw new Error(
      `Found only one of cert.pem and key.pem in "${dir}": remove it or supply the other`,
    );
  }
  const made = createSelfSignedCert(commonName);
  await Deno.mkdir(dir, { recursive: true });
  await writeFileAtomic(keyPath, made.key, 0o600);
  await writeFileAtomic(certPath, made.cert, 0o644);
  return made;
}

/** Options of `createSelfSignedCert`. */
export interface SelfSignedOptions {
  /** Validity in days from now; default 3650. */
  days?: number;
  /** Extra DNS names and IP addresses for the SAN (besides commonName and 127.0.0.1). */
  altNames?: string[];
}

/**
 * Creates (in memory) a self-signed EC P-256 certificate for `commonName`; see
 * `ensureSelfSignedCert` for its contents.
 */
export function createSelfSignedCert(
  commonName: string,
  options: SelfSignedOptions = {},
): CertPair {
  if (commonName.length === 0 || commonName.length > 64) {
    throw new RangeError(`Invalid common name: "${commonName}"`);
  }
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const spki = publicKey.export({ type: "spki", format: "der" });
  const tbs = tbsCertificate(commonName, options, new Uint8Array(spki));
  const signature = sign("sha256", tbs, privateKey as KeyObject);
  const der = seq(tbs, ECDSA_SHA256, bitString(new Uint8Array(signature)));
  const cert = toPem("CERTIFICATE", der);
  const key = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  return { cert, key, fingerprint: certFingerprint(cert) };
}

async function readIfExists(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

async function writeFileAtomic(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await Deno.writeTextFile(tmp, text, { mode, createNew: true });
    await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64");
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

// Minimal DER encoder, just enough for one X.509 v3 certificate.

function der(tag: number, body: Uint8Array): Uint8Array {
  const len = body.length;
  let head: number[];
  if (len < 0x80) head = [tag, len];
  else if (len < 0x100) head = [tag, 0x81, len];
  else if (len < 0x10000) head = [tag, 0x82, len >> 8, len & 0xff];
  else head = [tag, 0x83, len >> 16, (len >> 8) & 0xff, len & 0xff];
  const out = new Uint8Array(head.length + len);
  out.set(head);
  out.set(body, head.length);
  return out;
}

function seq(...parts: Uint8Array[]): Uint8Array {
  return der(0x30, concat(parts));
}

function oid(dotted: string): Uint8Array {
  const nums = dotted.split(".").map(Number);
  const bytes = [40 * nums[0]! + nums[1]!];
  for (const n of nums.slice(2)) {
    const group = [n & 0x7f];
    for (let v = n >>> 7; v > 0; v >>>= 7) group.unshift((v & 0x7f) | 0x80);
    bytes.push(...group);
  }
  return der(0x06, new Uint8Array(bytes));
}

function bitString(bytes: Uint8Array): Uint8Array {
  return der(0x03, concat([new Uint8Array([0]), bytes]));
}

function octetString(bytes: Uint8Array): Uint8Array {
  return der(0x04, bytes);
}

function utf8String(text: string): Uint8Array {
  return der(0x0c, new TextEncoder().encode(text));
}

/** UTCTime before 2050, GeneralizedTime from 2050 on (RFC 5280 §4.1.2.5). */
function time(date: Date): Uint8Array {
  const iso = date.toISOString(); // 2026-01-02T03:04:05.000Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, "") + "Z";
  const ascii = new TextEncoder();
  return date.getUTCFullYear() < 2050
    ? der(0x17, ascii.encode(digits.slice(2)))
    : der(0x18, ascii.encode(digits));
}

function ipBytes(ip: string): Uint8Array {
  if (isIP(ip) === 4) return new Uint8Array(ip.split(".").map(Number));
  // IPv6: expand "::" then 8 groups of 16 bits.
  const [head = "", tail] = ip.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

const ECDSA_SHA256 = seq(oid("1.2.840.10045.4.3.2"));

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  const parts = [oid(id)];
  if (critical) parts.push(der(0x01, new Uint8Array([0xff])));
  parts.push(octetString(value));
  return seq(...parts);
}

function tbsCertificate(cn: string, options: SelfSignedOptions, spki: Uint8Array): Uint8Array {
  const serial = new Uint8Array(randomBytes(16));
  serial[0] = (serial[0]! & 0x7f) | 0x40; // positive, no leading zero byte
  const name = seq(der(0x31, seq(oid("2.5.4.3"), utf8String(cn))));
  const now = Date.now();
  const notBefore = new Date(now - 60 * 60 * 1000); // tolerate clock skew
  const notAfter = new Date(now + (options.days ?? 3650) * 24 * 60 * 60 * 1000);
  const names = [cn, "127.0.0.1", ...(options.altNames ?? [])];
  const seen = new Set<string>();
  const general: Uint8Array[] = [];
  for (const n of names) {
    if (seen.has(n)) continue;
    seen.add(n);
    general.push(isIP(n) ? der(0x87, ipBytes(n)) : der(0x82, new TextEncoder().encode(n)));
  }
  const extensions = seq(
    extension("2.5.29.19", true, seq()), // basicConstraints: CA:FALSE
    // keyUsage: digitalSignature (bit 0; 7 unused bits, as DER wants)
    extension("2.5.29.15", true, der(0x03, new Uint8Array([7, 0x80]))),
    extension("2.5.29.37", false, seq(oid("1.3.6.1.5.5.7.3.1"), oid("1.3.6.1.5.5.7.3.2"))),
    extension("2.5.29.17", false, seq(...general)), // subjectAltName
  );
  return seq(
    der(0xa0, der(0x02, new Uint8Array([2]))), // version v3
    der(0x02, serial),
    ECDSA_SHA256,
    name,
    seq(time(notBefore), time(notAfter)),
    name,
    spki,
    der(0xa3, extensions),
  );
}
