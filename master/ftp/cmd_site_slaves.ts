/**
 * SITE verbs for operating slaves and their copies (admins): SLAVE, KICKSLAVE, REPLICATION,
 * RELOAD. (SLAVES, COPY and REMERGE are in `cmd_basic.ts`.)
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { FtpError } from "./errors.ts";
import { FILE_UNAVAILABLE, OK, SYNTAX_ERROR_ARGS } from "./replies.ts";
import type { Session } from "./session.ts";

const log = getLogger(["drftpd", "master", "ftp"]);

/** The one slave name `arg` holds, or 501 naming the usage. */
function slaveArg(arg: string, usage: string): string {
  const words = arg.trim().split(/\s+/);
  if (words.length !== 1 || words[0] === "") {
    throw new FtpError(SYNTAX_ERROR_ARGS, `Usage: ${usage}`);
  }
  return words[0]!;
}

/**
 * SITE SLAVE <name>: one slave in detail: state, address, free/total space, client transfers and
 * copies running, their current speed (the sum of the running transfers' speeds), when it was last
 * heard from, and the files and bytes the filelist records it holding (counted now from the holder
 * index).
 */
export async function slave(s: Session, arg: string): Promise<void> {
  const name = slaveArg(arg, "SITE SLAVE <name>");
  const { slaves, filelist } = s.services;
  const status = (await slaves.status()).find((x) => x.name === name);
  if (status === undefined) {
    throw new FtpError(FILE_UNAVAILABLE, `No slave called ${name.slice(0, 64)} is known`);
  }
  const handle = slaves.get(name);
  const running = handle?.transfers() ?? [];
  const copies = handle?.copies ?? 0;
  const held = await filelist.heldTotals(name);
  await s.reply(OK, [
    `Slave ${name}:`,
    `state=${status.state}${status.state === "online" && status.remerging ? "+remerging" : ""}`,
    `address=${status.address}`,
    `free=${status.free} total=${status.total}`,
    `transfers=${status.activeTransfers - copies} copies=${copies}`,
    `speed=${running.reduce((sum, t) => sum + t.speed, 0)} (bytes/s, running transfers now)`,
    `last_seen=${new Date(status.lastSeen).toISOString()}`,
    `files=${held.files}${held.complete ? "" : "+"} bytes=${held.bytes}${
      held.complete ? "" : "+"
    } (held, per the filelist)`,
    "End",
  ]);
}

/** SITE KICKSLAVE <name>: drops a slave's link; it reconnects and remerges by itself. */
export async function kickSlave(s: Session, arg: string): Promise<void> {
  const name = slaveArg(arg, "SITE KICKSLAVE <name>");
  const handle = s.services.slaves.get(name);
  if (handle === undefined) {
    throw new FtpError(FILE_UNAVAILABLE, `Slave ${name.slice(0, 64)} is not connected`);
  }
  log.info("{who} kicked slave {slave}", { who: s.who, slave: name });
  handle.close();
  await s.reply(OK, `Dropped the link of ${name}; it reconnects and remerges by itself`);
}

/**
 * SITE REPLICATION: files queued and waiting for a free copy slot, copies running with their
 * progress, copies made and failed so far, and the last failures.
 */
export async function replication(s: Session): Promise<void> {
  const r = s.services.replication?.report();
  if (r === undefined) {
    await s.reply(OK, "No replication in this master");
    return;
  }
  await s.reply(OK, [
    `Replication: queued=${r.queued} waiting=${r.waiting} running=${r.copies.length} copied=${r.copied} failed=${r.failed}`,
    ...r.copies.map((c) =>
      `copy path=${
        JSON.stringify(c.path)
      } from=${c.from} to=${c.to} bytes=${c.bytes} size=${c.size}`
    ),
    ...r.errors.map((e) =>
      `error at=${new Date(e.at).toISOString()} path=${
        JSON.stringify(e.path)
      } to=${e.to} ${e.error}`
    ),
    "End",
  ]);
}

/** SITE RELOAD: re-reads master.toml's reloadable parts (see `config_reload.ts`). */
export async function reload(s: Session): Promise<void> {
  if (s.services.reload === undefined) {
    throw new FtpError(FILE_UNAVAILABLE, "This master cannot reload its config");
  }
  let done;
  try {
    done = await s.services.reload();
  } catch (e) {
    throw new FtpError(
      FILE_UNAVAILABLE,
      `Reload failed, the running config stays: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  log.info("{who} reloaded the config", { who: s.who });
  await s.reply(OK, [
    "Reloaded master.toml:",
    `applied: ${done.applied.join(", ") || "nothing changed"}`,
    ...(done.restart.length
      ? [`changed, applied at the next restart: ${done.restart.join(", ")}`]
      : []),
    "End",
  ]);
}
