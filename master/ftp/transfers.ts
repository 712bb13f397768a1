/**
 * Data transfers: RETR/STOR/APPE through a slave (the slave moves the bytes; the master relays
 * only for clients that did not send PRET), and LIST/NLST/MLSD served by the master.
 */
import { getLogger } from "@logtape/logtape";
import { baseName, parentOf } from "../../shared/paths.ts";
import {
  type DataEndpoint,
  MAX_TRANSFER_TEXT,
  type TransferReq,
  type TransferResult,
} from "../../shared/protocol.ts";
import { connectTlsClient } from "../../shared/tls/mod.ts";
import { type DataConn, finish, relayBytes, secureDataConn } from "./data_tls.ts";
import type { Entry, FileEntry } from "../filelist/types.ts";
import { SlaveGoneError, type SlaveHandle, SlaveReplyError } from "../slaves/slave_handle.ts";
import type { TransferControl } from "./command_spec.ts";
import { applyOnSlaves } from "./cmd_files.ts";
import { ActiveChannel, type DataChannel } from "./data_channel.ts";
import { beginTransfer } from "./accounting.ts";
import { unfiltered } from "../auth/visibility.ts";
import { FtpError } from "./errors.ts";
import { formatListing, formatMlsxFacts, formatNlst } from "./listing.ts";
import type { DataPlan, DataSecurity, Session } from "./session.ts";
import { writeAll } from "../../shared/bytes.ts";
import { closeQuietly, sameHost } from "../../shared/net.ts";
import {
  BAD_SEQUENCE,
  CANT_OPEN_DATA,
  CLOSING_DATA,
  FILE_STATUS_OK_OPENING,
  FILE_UNAVAILABLE,
  PROT_REQUIRED,
  SYNTAX_ERROR_ARGS,
  TRANSFER_ABORTED,
} from "./replies.ts";

const log = getLogger(["drftpd", "master", "transfer"]);

/** RETR */
export async function retr(s: Session, _a: string, path: string | null, c: TransferControl) {
  await fileTransfer(s, "download", path!, false, c);
}

/** STOR */
export async function stor(s: Session, _a: string, path: string | null, c: TransferControl) {
  await fileTransfer(s, "upload", path!, false, c);
}

/** APPE */
export async function appe(s: Session, _a: string, path: string | null, c: TransferControl) {
  await fileTransfer(s, "upload", path!, true, c);
}

/** Takes the prepared data connection (and the PRET) for one transfer command. */
function takePlan(s: Session): DataPlan {
  const plan = s.data;
  s.data = null;
  s.pret = null;
  if (!plan) {
    throw new FtpError(
      CANT_OPEN_DATA,
      "No data connection prepared: send PRET then PASV, or EPSV, PASV, PORT or EPRT first",
    );
  }
  return plan;
}

async function fileTransfer(
  s: Session,
  kind: "download" | "upload",
  path: string,
  append: boolean,
  ctrl: TransferControl,
): Promise<void> {
  const offset = s.rest;
  s.rest = 0;
  const plan = takePlan(s);
  const sec = s.takeDataSecurity();
  let releasePlan = true;
  try {
    // Held until the final reply: see master/path_locks.ts.
    using _held = s.services.locks.transfer(path, kind);
    requireProtection(s, sec);
    const { filelist } = s.services;
    // An upload replaces what is there, hidden from the user or not (stale copies go too).
    const entry = await (kind === "upload" ? unfiltered(filelist) : filelist).get(path);
    if (kind === "download") {
      if (!entry) throw new FtpError(FILE_UNAVAILABLE, `No such file: ${path}`);
      if (entry.kind !== "file") throw new FtpError(FILE_UNAVAILABLE, `Not a plain file: ${path}`);
    } else {
      if (entry?.kind === "dir") throw new FtpError(FILE_UNAVAILABLE, `${path} is a directory`);
      const parent = await filelist.get(parentOf(path));
      if (!parent || parent.kind !== "dir") {
        throw new FtpError(FILE_UNAVAILABLE, `Directory ${parentOf(path)} does not exist`);
      }
    }
    const file = entry?.kind === "file" ? entry : null;
    const resuming = append || offset > 0;

    let slave: SlaveHandle;
    if (plan.kind === "slave" && plan.pret.kind === "any") {
      // PASV without PRET went to the only slave: it must be able to serve this transfer.
      slave = plan.slave;
      if (kind === "download" && !file!.slaves.includes(slave.name)) {
        throw new FtpError(
          CANT_OPEN_DATA,
          `${slave.name} answered PASV but does not hold ${path}; send PRET first`,
        );
      }
      if (kind === "upload" && resuming && file && !file.slaves.includes(slave.name)) {
        throw new FtpError(
          CANT_OPEN_DATA,
          `${slave.name} answered PASV but does not hold ${path}; send PRET first`,
        );
      }
    } else if (plan.kind === "slave") {
      if (plan.pret.kind !== kind) {
        throw new FtpError(BAD_SEQUENCE, `PRET announced ${plan.pret.verb}, not a ${kind}`);
      }
      // Security: the slave's port was opened for the PRET path (FXP rules were decided for it).
      if (plan.pret.path !== path) {
        throw new FtpError(
          BAD_SEQUENCE,
          `PRET announced ${plan.pret.path}, not ${path}; send PRET again`,
        );
      }
      slave = plan.slave;
      if (slave.state === "gone") throw new SlaveGoneError(slave.name);
      if (kind === "download" && !file!.slaves.includes(slave.name)) {
        throw new FtpError(
          BAD_SEQUENCE,
          `PRET named another file: ${slave.name} does not hold ${path}`,
        );
      }
      if (kind === "upload" && resuming && file && !file.slaves.includes(slave.name)) {
        throw new FtpError(BAD_SEQUENCE, `Resume of ${path} must go to a slave holding it`);
      }
    } else {
      if (plan.kind === "active" && !sameHost(plan.host, s.remoteHost)) {
        // Security: FXP rules per path and direction (the global switch was checked at PORT).
        if (!await s.may(kind === "upload" ? "fxp_upload" : "fxp_download", path)) {
          throw new FtpError(FILE_UNAVAILABLE, `FXP ${kind} of ${path} is not allowed`);
        }
      }
      slave = s.services.slaves.choose({ kind, path, holders: file?.slaves ?? [], resuming });
    }

    const xfer = plan.kind === "slave" ? plan.xfer : crypto.randomUUID();
    // Per-user limits and credits, decided before the 150: nothing has moved yet.
    const account = await beginTransfer(
      s,
      kind,
      path,
      xfer,
      kind === "download" ? Math.max(0, file!.size - offset) : 0,
    );
    const mode = s.type === "A" ? "ASCII" : "BINARY";
    const sizeNote = file && kind === "download" ? ` (${file.size} bytes)` : "";
    slave.activeTransfers++;
    slave.lastPicked = performance.now();
    const tracker = s.services.metrics.startTransfer({
      user: s.user!.name,
      remoteHost: s.remoteHost,
      path,
      direction: kind,
      route: plan.kind === "master" || (plan.kind === "slave" && plan.proxy) ? "relayed" : "direct",
      slave: slave.name,
      ascii: s.type === "A",
      size: kind === "download" && file ? file.size : null,
    });
    const stopProgress = slave.onProgress(xfer, (bytes) => {
      tracker.progress(bytes);
      account.progress(bytes);
    });
    let aborted = false;
    const abortSlave = () => {
      aborted = true;
      slave.request("abort", { xfer }).catch(() => {});
    };
    ctrl.onAbort(abortSlave);
    try {
      const req = {
        xfer,
        dir: kind === "download" ? "send" as const : "receive" as const,
        path,
        offset,
        append,
        ascii: s.type === "A",
        tls: !sec.protect ? "none" as const : sec.asClient ? "client" as const : "server" as const,
      };
      let result: TransferResult;
      if (plan.kind === "master") {
        releasePlan = false;
        await s.reply(
          FILE_STATUS_OK_OPENING,
          `Opening ${mode} mode data connection for ${path}${sizeNote} (relayed via master from ${slave.name})`,
        );
        result = await relay(s, slave, plan.channel, req, sec, ctrl, () => (aborted = true));
      } else {
        const endpoint: DataEndpoint = plan.kind === "slave"
          ? { kind: "passive" }
          : { kind: "active", host: plan.host, port: plan.port };
        await s.reply(
          FILE_STATUS_OK_OPENING,
          `Opening ${mode} mode data connection for ${path}${sizeNote} via ${slave.name}`,
        );
        result = await slave.request("transfer", {
          ...req,
          endpoint,
          peer: plan.kind === "active" ? plan.host : null,
        });
      }
      if (plan.kind === "slave" && plan.proxy) {
        // A client that ignored the 227 address is piped through the master: let it finish.
        plan.proxy.stopListening();
        await plan.proxy.done;
      }
      if (kind === "upload") {
        await recordUpload(s, path, slave, file, result, resuming);
        s.services.replication?.fileChanged(path);
      }
      await account.finish(result.bytes, true);
      tracker.end("complete", result.bytes);
      log.info("{dir} {user} {path} {bytes} bytes {ms} ms via {slave}", {
        dir: kind === "download" ? "RETR" : append ? "APPE" : "STOR",
        user: s.who,
        path,
        bytes: result.bytes,
        ms: result.ms,
        slave: slave.name,
      });
      await s.reply(
        CLOSING_DATA,
        `Transfer complete: ${result.bytes} bytes in ${result.ms} ms via ${slave.name}${
          result.tls
            ? `, ${result.tls.protocol}${result.tls.resumed ? " (TLS session resumed)" : ""}`
            : ""
        }`,
      );
    } catch (e) {
      // Only the bytes that moved count: what is on disk for an upload, what the slave last
      // reported sending for a download.
      const moved = e instanceof SlaveReplyError && e.partial ? e.partial.bytes : 0;
      await account.finish(kind === "upload" ? moved : null, false);
      if (kind === "upload" && e instanceof SlaveReplyError && e.partial) {
        await recordPartial(s, path, slave, file, e.partial).catch((err) =>
          log.error("Could not record partial upload {path}: {err}", { path, err: String(err) })
        );
      }
      log.warn("{dir} {user} {path} failed via {slave}: {error}", {
        dir: kind === "download" ? "RETR" : "STOR",
        user: s.who,
        path,
        slave: slave.name,
        error: e instanceof Error ? e.message : String(e),
      });
      const partial = e instanceof SlaveReplyError ? e.partial?.bytes : undefined;
      tracker.end(aborted ? "aborted" : "failed", partial);
      if (aborted) throw new FtpError(TRANSFER_ABORTED, "Transfer aborted");
      throw e; // errors.ts maps it (a transfer's reply)
    } finally {
      stopProgress();
      tracker.end("failed"); // no-op when already ended
      slave.activeTransfers--;
      await account.finish(0, false); // no-op after either of the above
    }
  } finally {
    if (releasePlan) releaseUnused(plan);
  }
}

function releaseUnused(plan: DataPlan): void {
  if (plan.kind === "master") plan.channel.close();
  if (plan.kind === "slave") plan.proxy?.close();
}

/** Relays the client's data connection (accepted by the master) to the slave's. */
async function relay(
  s: Session,
  slave: SlaveHandle,
  channel: DataChannel,
  req: Omit<TransferReq, "type" | "id" | "endpoint" | "peer">,
  sec: DataSecurity,
  ctrl: TransferControl,
  markAborted: () => void,
): Promise<TransferResult> {
  // Every connection of both legs, plain ones included until TLS owns them: an abort drops them
  // all at once; a normal end closes the TLS ones gracefully (close_notify, then linger).
  const conns: DataConn[] = [];
  const closeAll = (hard: boolean) => {
    for (const c of conns) {
      try {
        if (hard && c.abort) c.abort();
        else c.close();
      } catch {
        // closed
      }
    }
  };
  ctrl.onAbort(() => {
    markAborted();
    slave.request("abort", { xfer: req.xfer }).catch(() => {});
    channel.close();
    closeAll(true);
  });
  // A dropped slave (silent too long) ends both legs at once, not when TCP gives up.
  const onGone = () => {
    channel.close();
    closeAll(true);
  };
  slave.signal.addEventListener("abort", onGone, { once: true });
  try {
    // The master-to-slave leg is TLS too when the client asked for protection.
    const legTls = sec.protect ? "server" as const : "none" as const;
    const r = await slave.request("listen", { xfer: req.xfer, peer: slave.localAddress });
    const result = slave.request("transfer", {
      ...req,
      tls: legTls,
      endpoint: { kind: "passive" },
      peer: slave.localAddress,
    });
    result.catch(() => {});
    const accepted = await channel.connect();
    conns.push(accepted);
    const client = await secureDataConn(s, accepted, sec);
    conns.splice(conns.indexOf(accepted), 1, client);
    const raw = await Deno.connect({ hostname: r.host, port: r.port });
    conns.push(raw);
    const toSlave: DataConn = sec.protect
      ? await connectTlsClient(raw, { insecure: true, handshakeTimeoutMs: 30_000 })
      : raw;
    conns.splice(conns.indexOf(raw), 1, toSlave);
    const pipe = req.dir === "send"
      ? relayBytes(toSlave, client)
      // The client's close_notify (or FIN) ended the upload: answer it now, as a TLS peer does
      // (ftplib's unwrap() waits for it), while the slave finishes writing. A client that closed
      // right after its close_notify (curl) cannot get it: the upload is complete all the same.
      : relayBytes(client, toSlave).then(async (n) => {
        await client.closeWrite?.().catch(() => {});
        return n;
      });
    const [res] = await Promise.all([result, pipe]);
    return res;
  } finally {
    slave.signal.removeEventListener("abort", onGone);
    channel.close();
    closeAll(false);
  }
}

function requireProtection(s: Session, sec: DataSecurity): void {
  if (!sec.protect && s.services.config.ftp.tls === "required") {
    throw new FtpError(
      PROT_REQUIRED,
      "Data connections must be protected on this server: send PROT P",
    );
  }
}

async function recordUpload(
  s: Session,
  path: string,
  slave: SlaveHandle,
  before: FileEntry | null,
  r: TransferResult,
  resuming: boolean,
): Promise<void> {
  const u = s.user!;
  const stale = (before?.slaves ?? []).filter((n) => n !== slave.name);
  await s.services.filelist.putFile(path, {
    size: r.size,
    mtime: r.mtime,
    owner: before?.owner ?? u.name,
    group: before?.group ?? u.primaryGroup,
    crc32: r.crcWhole && !resuming ? r.crc32 : null,
    slaves: [slave.name],
    xferMs: r.ms,
  });
  // Other holders now have an old version: remove it where we can.
  if (stale.length > 0) await applyOnSlaves(s, stale, { op: "delete", path });
}

async function recordPartial(
  s: Session,
  path: string,
  slave: SlaveHandle,
  before: FileEntry | null,
  partial: { size: number; mtime: number; bytes: number },
): Promise<void> {
  const u = s.user!;
  if (partial.size === 0 && !before) {
    s.services.slaves.noteChange({ op: "delete", path });
    await slave.request("delete", { path }).catch(() => {});
    return;
  }
  await s.services.filelist.putFile(path, {
    size: partial.size,
    mtime: partial.mtime,
    owner: before?.owner ?? u.name,
    group: before?.group ?? u.primaryGroup,
    crc32: null,
    slaves: [slave.name],
    xferMs: 0,
  });
}

/** LIST (the dispatcher resolved and checked the target path). */
export async function list(s: Session, _a: string, path: string | null, c: TransferControl) {
  await listing(s, "LIST", path!, c);
}

/** NLST */
export async function nlst(s: Session, _a: string, path: string | null, c: TransferControl) {
  await listing(s, "NLST", path!, c);
}

/** MLSD */
export async function mlsd(s: Session, _a: string, path: string | null, c: TransferControl) {
  await listing(s, "MLSD", path!, c);
}

async function listing(s: Session, verb: string, path: string, ctrl: TransferControl) {
  const plan = takePlan(s);
  const sec = s.takeDataSecurity();
  let channel: DataChannel | null = null;
  try {
    requireProtection(s, sec);
    if (plan.kind === "slave" && plan.pret.kind !== "any") {
      throw new FtpError(
        BAD_SEQUENCE,
        `PRET announced ${plan.pret.verb}; send PRET ${verb} for a listing`,
      );
    }
    const fl = s.services.filelist;
    const e = await fl.get(path);
    if (!e) throw new FtpError(FILE_UNAVAILABLE, `No such file or directory: ${path}`);
    let entries: Entry[];
    if (e.kind === "dir") entries = await fl.list(path);
    else if (verb === "MLSD") throw new FtpError(SYNTAX_ERROR_ARGS, `Not a directory: ${path}`);
    else entries = [e.name === "" ? { ...e, name: baseName(path) } : e];
    const now = Date.now();
    const text = verb === "LIST"
      ? formatListing(entries, now)
      : verb === "NLST"
      ? formatNlst(entries)
      : entries.map((x) => formatMlsxFacts(x) + "\r\n").join("");
    if (plan.kind === "slave") {
      await listingViaSlave(s, plan, verb, path, text, entries.length, sec, ctrl);
      return;
    }
    channel = plan.kind === "master" ? plan.channel : new ActiveChannel(plan.host, plan.port);
    const ch = channel;
    ctrl.onAbort(() => ch.close());
    await s.reply(FILE_STATUS_OK_OPENING, `Opening ASCII mode data connection for ${verb} ${path}`);
    let raw: Deno.Conn;
    try {
      raw = await ch.connect();
    } catch (err) {
      throw new FtpError(
        CANT_OPEN_DATA,
        `Cannot open data connection: ${err instanceof Error ? err.message : err}`,
      );
    }
    ctrl.onAbort(() => {
      ch.close();
      closeQuietly(raw);
    });
    const conn = await secureDataConn(s, raw, sec);
    ctrl.onAbort(() => {
      ch.close();
      conn.abort ? conn.abort() : conn.close();
    });
    try {
      await writeAll(conn, new TextEncoder().encode(text));
      // close_notify and FIN after the last byte; close() then lingers for the client's reply
      await finish(conn);
    } catch (err) {
      conn.abort ? conn.abort() : conn.close();
      throw new FtpError(
        TRANSFER_ABORTED,
        `Listing interrupted: ${err instanceof Error ? err.message : err}`,
      );
    }
    ch.close();
    await s.reply(CLOSING_DATA, `${verb} complete: ${entries.length} entries`);
  } finally {
    channel?.close();
    if (plan.kind === "slave") {
      plan.proxy?.close();
      plan.slave.request("abort", { xfer: plan.xfer }).catch(() => {});
    }
  }
}

/** A listing over the only slave's passive port (PASV without PRET): the slave sends our text. */
async function listingViaSlave(
  s: Session,
  plan: DataPlan & { kind: "slave" },
  verb: string,
  path: string,
  text: string,
  count: number,
  sec: DataSecurity,
  ctrl: TransferControl,
): Promise<void> {
  if (text.length > MAX_TRANSFER_TEXT) {
    throw new FtpError(
      CANT_OPEN_DATA,
      `Listing of ${path} is too large for this data connection; send PRET ${verb}`,
    );
  }
  const { slave, xfer } = plan;
  let aborted = false;
  ctrl.onAbort(() => {
    aborted = true;
    slave.request("abort", { xfer }).catch(() => {});
  });
  await s.reply(
    FILE_STATUS_OK_OPENING,
    `Opening ASCII mode data connection for ${verb} ${path} via ${slave.name}`,
  );
  try {
    await slave.request("transfer", {
      xfer,
      dir: "send",
      path,
      offset: 0,
      append: false,
      ascii: true,
      endpoint: { kind: "passive" },
      peer: null,
      tls: !sec.protect ? "none" : sec.asClient ? "client" : "server",
      text,
    });
  } catch (e) {
    if (aborted) throw new FtpError(TRANSFER_ABORTED, "Listing aborted");
    throw e; // errors.ts maps it (a transfer's reply)
  }
  if (plan.proxy) {
    plan.proxy.stopListening();
    await plan.proxy.done;
  }
  await s.reply(CLOSING_DATA, `${verb} complete: ${count} entries`);
}
