/**
 * What a user sees of the filelist: paths they may not `list` (or under a folder they may not
 * list) are absent, exactly as if they did not exist. A session reads the filelist through this
 * view once its user is known, so LIST/NLST/MLSD/STAT leave those entries out and
 * CWD/SIZE/MDTM/MLST/RETR answer for them what they answer for a missing path, without a check
 * in any handler. Writes go through unchanged (the dispatcher has decided on them already).
 */
import { joinPath } from "../../shared/paths.ts";
import type { Entry, Filelist } from "../filelist/types.ts";
import type { PathPolicy } from "./path_rules.ts";
import type { User } from "./users.ts";

/** `filelist` as `user` sees it under `policy` (the filelist itself when nothing is hidden). */
export function visibleFilelist(filelist: Filelist, policy: PathPolicy, user: User): Filelist {
  if (policy.empty || user.admin) return filelist;
  const visible = (path: string) => policy.visible(user, path);
  const get = async (path: string): Promise<Entry | null> =>
    visible(path) ? await filelist.get(path) : null;
  const list = async (path: string): Promise<Entry[]> => {
    if (!visible(path)) return [];
    return (await filelist.list(path)).filter((e) => visible(joinPath(path, e.name)));
  };
  // Everything but get and list is the filelist's own method, bound to it.
  return new Proxy(filelist, {
    get(target, prop) {
      if (prop === WHOLE) return target;
      if (prop === "get") return get;
      if (prop === "list") return list;
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** The property of a view that answers the whole filelist behind it. */
const WHOLE = Symbol("whole filelist");

/**
 * The whole filelist behind a view (the filelist itself otherwise). Security: decisions about
 * an existing entry (its owner, for `overwrite`; an upload replacing it) must see hidden ones.
 */
export function unfiltered(filelist: Filelist): Filelist {
  return (filelist as Filelist & { [WHOLE]?: Filelist })[WHOLE] ?? filelist;
}
