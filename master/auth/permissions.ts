/**
 * Permission decisions, in one place. Today: logged-in users may do everything except admin
 * actions, and FXP follows the `[ftp] fxp` switch and `[[ftp.fxp_rules]]`. Per-user, per-group
 * and per-path rules will be decided here too, so every caller already passes the user.
 */
import type { FxpRule } from "../../shared/config_types.ts";
import type { User } from "./users.ts";

/** What a command wants to do, for permission checks. */
export type Action = "read" | "write" | "delete" | "rename" | "mkdir" | "list" | "admin";

/** Whether `user` may perform `action` on `path`. */
export function permits(user: User, action: Action, _path: string): boolean {
  if (action === "admin") return user.admin;
  return true;
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
export function fxpAllowed(
  policy: FxpPolicy,
  _user: User,
  direction: "upload" | "download" | null,
  path: string | null,
): boolean {
  if (policy.fxp === "deny") return false;
  if (direction === null || path === null) return true;
  for (const rule of policy.fxp_rules) {
    if (globMatch(rule.path, path)) return rule[direction];
  }
  return true;
}

/** Matches a virtual path against a glob: `*` within one name, `**` across folders, `?` one char. */
export function globMatch(glob: string, path: string): boolean {
  let re = "^";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") {
      // "/**" at the end also matches the folder itself
      if (glob[i + 2] === undefined && re.endsWith("/")) re = re.slice(0, -1) + "(?:/.*)?";
      else re += ".*";
      i++;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(re + "$").test(path);
}
