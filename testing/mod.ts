/**
 * Test and bench support, one import for both: a test site of real processes (`site.ts`), the one
 * raw FTP client (`ftp_client.ts`), client processes and curl flags (`process.ts`), free ports
 * (`ports.ts`), bounded waits (`wait.ts`), test data and file checks (`files.ts`), a vsftpd setup
 * (`vsftpd.ts`) and a recording TCP proxy (`recording_proxy.ts`).
 *
 * @module
 */

export * from "./chromium.ts";
export * from "./daemon.ts";
export * from "./files.ts";
export * from "./ftplib.ts";
export * from "./ftp_client.ts";
export * from "./ports.ts";
export * from "./process.ts";
export * from "./prometheus.ts";
export * from "./recording_proxy.ts";
export * from "./site.ts";
export * from "./vsftpd.ts";
export * from "./wait.ts";
