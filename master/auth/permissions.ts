/**
 * Permission decisions, in one place: `permits` is the one function every permission decision
 * goes through (the FTP dispatcher calls it for each command-table row with the row's action and
 * the real target path; the data commands call it for FXP). Today: logged-in users may do
 * everything except the `site_admin` actions, and FXP follows the `[ftp] fxp` switch and
 * `[[ftp.fxp_rules]]`. Per-user, per-group and per-path rules are decided here too.
 */
import type { FxpRule } from "../../shared/config_types.ts";
import type { Filelist } from "../filelist/types.ts";
import { pathAllowed } from "./path_access.ts";
import { globRegExp, type PathPolicy } from "./path_rules.ts";
import type { User } from "./users.ts";

/**
 * What a command wants to do, for permission checks. A command-table row names the base
 * action (`delete`, `rename`, `upload`); the `_own` and `overwrite` variants exist for the
 * policy, which looks up the target's entry (owner, existence) and may ask for them instead:
 * - `list`: CWD, LIST/NLST/MLSD/MLST/STAT of a path
 * - `download`: RETR, SIZE, MDTM, XCRC
 * - `upload`: STOR/APPE of a new file, MFMT (`overwrite` when the file exists)
 * - `makedir`: MKD
 * - `delete`, `delete_own`: DELE, RMD (own = the entry's owner is the user)
 * - `rename`, `rename_own`: RNFR/RNTO
 * - `overwrite`: replacing an existing file by an upload
 * - `fxp_upload`, `fxp_download`: a data connection with a third party (not the client)
 * - `site_user`: SITE commands any logged-in user may run (SITE HELP)
 * - `site_gadmin`: SITE commands for admins and group admins (which users: the handler decides)
 * - `site_admin`: SITE commands for admins (SITE SLAVES, SITE REMERGE)
 */
export type Action =
  | "list"
  | "download"
  | "upload"
  | "makedir"
  | "delete"
  | "delete_own"
  | "rename"
  | "rename_own"
  | "overwrite"
  | "fxp_upload"
  | "fxp_download"
  | "site_user"
  | "site_gadmin"
  | "site_admin";

/** What one permission decision is about. */
export interface PermissionRequest {
  action: Action;
  /**
   * The normalised virtual target path; null only for FXP decided before the path is known
   * (PASV/PORT without PRET), where only the global switch applies.
   */
  path: string | null;
}

/**
 * What the policy may consult: the filelist (an entry's owner), the FXP settings and the
 * `[[permissions]]` path rules.
 */
export interface PermissionContext {
  filelist: Filelist;
  fxp: FxpPolicy;
  paths: PathPolicy;
}

/** Whether `user` may do `req.action` on `req.path`. The one permission decision. */
export async function permits(
  user: User,
  req: PermissionRequest,
  ctx: PermissionContext,
): Promise<boolean> {
  switch (req.action) {
    case "site_admin":
      return user.admin;
    case "site_gadmin":
      return user.admin || user.groupAdmin !== null;
    case "site_user":
      return true;
    case "fxp_upload":
    case "fxp_download": {
      const dir = req.action === "fxp_upload" ? "upload" : "download";
      if (!fxpAllowed(ctx.fxp, user, dir, req.path)) return false;
      return req.path === null ||
        await pathAllowed(ctx.paths, ctx.filelist, user, req.action, req.path);
    }
  }
  // Every path action: `[[permissions]]` on the real target (path_access.ts).
  if (req.path === null) return false;
  return await pathAllowed(ctx.paths, ctx.filelist, user, req.action, req.path);
}

/** The FXP policy from master.toml. */
export interface FxpPolicy {
  fxp: "allow" | "deny";
  fxp_rules: readonly FxpRule[];
}

/**
 * Whether `user` may move data between this server and a third party (a data peer that is not
 * the client's address). `direction` is "upload" when the third party sends us the file,
 * "download" when we send it; with `path` null (not known yet) only the global switch decides.
 * Security: this is the FXP / FTP-bounce gate.
 */
function fxpAllowed(
  policy: FxpPolicy,
  _user: User,
  direction: "upload" | "download",
  path: string | null,
): boolean {
  if (policy.fxp === "deny") return false;
  if (path === null) return true;
  for (const rule of policy.fxp_rules) {
    if (globMatch(rule.path, path)) return rule[direction];
  }
  return true;
}

/** Matches a virtual path against a glob: `*` within one name, `**` across folders, `?` one char. */
export function globMatch(glob: string, path: string): boolean {
  return globRegExp(glob).test(path);
}
