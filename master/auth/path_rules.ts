/**
 * Path permissions from master.toml's `[[permissions]]`: which user may do what under which
 * path. Pure: the rules, the user and (for the `_own` variants) the entry's owner in, a yes or
 * no out; `permissions.ts#permits` feeds it from the filelist.
 *
 * - Rules are tried in order; the first rule whose path glob matches AND which names the action
 *   decides. Within it, a matching negated subject (`"!guest"`, `"!=guests"`) refuses, otherwise a
 *   matching subject (`"*"`, `"=group"`, `"user"`) allows, otherwise it refuses.
 * - No rule names the action: `list`, `download`, `upload`, `makedir`, `delete_own`,
 *   `rename_own`, `fxp_upload`, `fxp_download` are allowed to every logged-in user; `delete`,
 *   `rename` and `overwrite` (of someone else's entry) only to admins.
 * - Admins are not bound by the rules (they administer the site and its users anyway).
 * - A path the user may not `list`, or under a folder they may not `list`, is invisible.
 */
import type { PathAction, PermissionRule, Subject } from "../../shared/config_types.ts";
import type { User } from "./users.ts";

export type { PathAction, PermissionRule, Subject } from "../../shared/config_types.ts";

/** What a change of an entry needs, given who owns it. */
export type Intent =
  | "list"
  | "download"
  | "upload"
  | "makedir"
  | "delete"
  | "rename"
  | "fxp_upload"
  | "fxp_download";

/** The compiled `[[permissions]]` of a master. */
export class PathPolicy {
  #rules: { re: RegExp; actions: PermissionRule["actions"] }[];

  /** Compiles `rules` (already validated by the config loader). */
  constructor(rules: readonly PermissionRule[]) {
    this.#rules = rules.map((r) => ({ re: globRegExp(r.path), actions: r.actions }));
  }

  /** Whether any rule exists (without rules every decision is a default). */
  get empty(): boolean {
    return this.#rules.length === 0;
  }

  /** Whether `user` may do `action` on `path` itself (no owner logic, no ancestors). */
  allows(user: User, action: PathAction, path: string): boolean {
    if (user.admin) return true;
    for (const rule of this.#rules) {
      const subjects = rule.actions[action];
      if (subjects === undefined || !rule.re.test(path)) continue;
      const hits = subjects.filter((s) => subjectMatches(s, user));
      return hits.length > 0 && !hits.some((s) => s.negate);
    }
    return action !== "delete" && action !== "rename" && action !== "overwrite";
  }

  /** Whether `path` and every folder above it may be listed by `user`. */
  visible(user: User, path: string): boolean {
    if (user.admin || this.#rules.length === 0) return true;
    for (let p = path;; p = p.slice(0, Math.max(1, p.lastIndexOf("/")))) {
      if (!this.allows(user, "list", p)) return false;
      if (p === "/") return true;
    }
  }

  /**
   * Whether `user` may do `intent` on `path`, whose entry is owned by `owner` (null: no entry).
   * `delete`/`rename` of one's own entry need `delete_own`/`rename_own` (or the plain action);
   * an upload over someone else's file needs `overwrite` besides `upload`.
   */
  decide(user: User, intent: Intent, path: string, owner: string | null): boolean {
    const own = owner !== null && owner === user.name;
    switch (intent) {
      case "delete":
      case "rename":
        return (own && this.allows(user, `${intent}_own`, path)) ||
          this.allows(user, intent, path);
      case "upload":
        return this.allows(user, "upload", path) &&
          (owner === null || own || this.allows(user, "overwrite", path));
      default:
        return this.allows(user, intent, path);
    }
  }
}

function subjectMatches(s: Subject, user: User): boolean {
  if (s.kind === "any") return true;
  if (s.kind === "group") return user.groups.includes(s.name);
  return user.name === s.name;
}

/** A virtual path glob as a RegExp: `*` within one name, `**` across folders, `?` one char. */
export function globRegExp(glob: string): RegExp {
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
  return new RegExp(re + "$");
}
