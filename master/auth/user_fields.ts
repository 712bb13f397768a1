/**
 * The user fields an administrator changes by name (`drftpd user change`, `SITE CHANGE`), their
 * parsing, and the `key: value` lines that show a user (`drftpd user show`, `SITE USER`).
 * Pure: the CLI and the SITE verbs share these, so both accept and print the same.
 */
import type { User, UserSettings } from "./users.ts";

/** A bad field name or value; the message names it and says what is expected. */
export class FieldError extends TypeError {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "FieldError";
  }
}

type Setter = (u: UserSettings, value: string) => void;

const COUNT = (key: keyof UserSettings & string, what: string): Setter => (u, v) => {
  (u as unknown as Record<string, number>)[key] = parseCount(v, what);
};

/** Every changeable field: name → how its value is read and applied. */
const FIELDS: Readonly<Record<string, { help: string; set: Setter }>> = {
  ratio: {
    help: "download credit per uploaded byte; 0 = unlimited downloads",
    set: (u, v) => {
      const n = Number(v);
      if (!/^\d+(\.\d+)?$/.test(v) || n > 1000) {
        throw new FieldError(`Invalid ratio "${v}": use a number from 0 (unlimited) to 1000`);
      }
      u.ratio = n;
    },
  },
  credits: {
    help: "bytes left to download (K/M/G/T suffixes)",
    set: (u, v) => (u.credits = parseBytes(v)),
  },
  max_logins: { help: "sessions at once; 0 = no limit", set: COUNT("maxLogins", "max_logins") },
  max_logins_per_address: {
    help: "sessions at once from one address; 0 = no limit",
    set: COUNT("maxLoginsPerAddress", "max_logins_per_address"),
  },
  max_uploads: { help: "uploads at once; 0 = no limit", set: COUNT("maxUploads", "max_uploads") },
  max_downloads: {
    help: "downloads at once; 0 = no limit",
    set: COUNT("maxDownloads", "max_downloads"),
  },
  idle_timeout: {
    help: "seconds idle before disconnect; 0 = server default",
    set: COUNT("idleTimeout", "idle_timeout"),
  },
  admin: {
    help: "site administrator (true/false)",
    set: (u, v) => (u.admin = parseBool(v, "admin")),
  },
  disabled: {
    help: "logins refused (true/false)",
    set: (u, v) => (u.disabled = parseBool(v, "disabled")),
  },
  expires: {
    help: "YYYY-MM-DD (UTC, logins refused from that day on) or never",
    set: (u, v) => (u.expires = parseExpiry(v)),
  },
  group_admin: {
    help: "the group this user administers, or none",
    set: (u, v) => (u.groupAdmin = v.toLowerCase() === "none" ? null : v),
  },
  group_slots: {
    help: "users the group admin may have in the group",
    set: COUNT("groupSlots", "group_slots"),
  },
  groups: {
    help: "all groups, primary first, comma-separated; missing ones are added",
    set: (u, v) => (u.groups = v.split(",").map((g) => g.trim()).filter((g) => g !== "")),
  },
  masks: {
    help: "address masks, comma-separated (ident@1.2.3.*, 10.0.0.0/8), or none",
    set: (
      u,
      v,
    ) => (u.masks = v.toLowerCase() === "none"
      ? []
      : v.split(",").map((m) => m.trim()).filter((m) => m !== "")),
  },
  primary_group: {
    help: "first group (owner group of new files); added if missing",
    set: (u, v) => (u.groups = [v, ...u.groups.filter((g) => g !== v)]),
  },
};

/** The changeable field names with their help, sorted. */
export function fieldHelp(): string[] {
  return Object.entries(FIELDS).map(([k, f]) => `${k}: ${f.help}`).sort();
}

/** Applies `field = value` to `u`; throws {@link FieldError} naming a bad field or value. */
export function applyField(u: UserSettings, field: string, value: string): void {
  const f = FIELDS[field.toLowerCase()];
  if (!f) {
    throw new FieldError(
      `Unknown field "${field.slice(0, 32)}": use one of ${Object.keys(FIELDS).sort().join(", ")}`,
    );
  }
  f.set(u, value.trim());
}

/** Parses a byte count: digits with an optional K, M, G or T (binary) suffix, e.g. "3M". */
export function parseBytes(text: string): number {
  const m = /^(\d+)\s*([KMGT]i?B?|B)?$/i.exec(text.trim());
  const unit = (m?.[2] ?? "").toUpperCase()[0] ?? "";
  const scale = { "": 1, B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[unit];
  const n = m && scale !== undefined ? Number(m[1]) * scale : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new FieldError(`Invalid byte count "${text.slice(0, 32)}": use digits with K, M, G or T`);
  }
  return n;
}

function parseCount(text: string, what: string): number {
  if (!/^\d{1,7}$/.test(text) || Number(text) > 1_000_000) {
    throw new FieldError(
      `Invalid ${what} "${text.slice(0, 32)}": use a whole number from 0 to 1000000`,
    );
  }
  return Number(text);
}

function parseBool(text: string, what: string): boolean {
  const t = text.toLowerCase();
  if (["true", "yes", "on", "1"].includes(t)) return true;
  if (["false", "no", "off", "0"].includes(t)) return false;
  throw new FieldError(`Invalid ${what} "${text.slice(0, 32)}": use true or false`);
}

function parseExpiry(text: string): number | null {
  if (["never", "none", "0"].includes(text.toLowerCase())) return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  const t = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : NaN;
  if (!m || Number.isNaN(t) || new Date(t).toISOString().slice(0, 10) !== text) {
    throw new FieldError(`Invalid expiry "${text.slice(0, 32)}": use YYYY-MM-DD or never`);
  }
  return t;
}

/** A user as `key: value` lines (stable keys, machine-parsable; never the password hash). */
export function formatUserLines(u: User): string[] {
  const date = (t: number | null) => (t === null ? "never" : new Date(t).toISOString());
  const c = (p: keyof User["stats"]) => {
    const s = u.stats[p];
    return `bytes_up=${s.bytesUp} bytes_down=${s.bytesDown} files_up=${s.filesUp} files_down=${s.filesDown}`;
  };
  return [
    `name: ${u.name}`,
    `groups: ${u.groups.join(",")}`,
    `admin: ${u.admin}`,
    `group_admin: ${u.groupAdmin ?? "none"}`,
    `group_slots: ${u.groupSlots}`,
    `masks: ${u.masks.join(" ")}`,
    `max_logins: ${u.maxLogins}`,
    `max_logins_per_address: ${u.maxLoginsPerAddress}`,
    `max_uploads: ${u.maxUploads}`,
    `max_downloads: ${u.maxDownloads}`,
    `idle_timeout: ${u.idleTimeout}`,
    `disabled: ${u.disabled}`,
    `expires: ${u.expires === null ? "never" : new Date(u.expires).toISOString().slice(0, 10)}`,
    `created: ${date(u.created)}`,
    `last_login: ${date(u.lastLogin)}`,
    `ratio: ${u.ratio}`,
    `credits: ${u.credits}`,
    `stats_all: ${c("all")}`,
    `stats_day: ${c("day")}`,
    `stats_week: ${c("week")}`,
    `stats_month: ${c("month")}`,
  ];
}

/** One line per user: "name groups=a,b admin=false ratio=0 credits=0 disabled=false". */
export function formatUserSummary(u: User): string {
  return `${u.name} groups=${
    u.groups.join(",")
  } admin=${u.admin} ratio=${u.ratio} credits=${u.credits} disabled=${u.disabled}`;
}
