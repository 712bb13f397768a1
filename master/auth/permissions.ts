/**
 * Permission decisions, in one place. Today: logged-in users may do everything except admin
 * actions; per-user, per-group and per-path rules (and FXP rules) will be decided here.
 */
import type { User } from "./users.ts";

/** What a command wants to do, for permission checks. */
export type Action = "read" | "write" | "delete" | "rename" | "mkdir" | "list" | "admin";

/** Whether `user` may perform `action` on `path`. */
export function permits(user: User, action: Action, _path: string): boolean {
  if (action === "admin") return user.admin;
  return true;
}
