/**
 * The path part of a permission decision: `[[permissions]]` (through {@link PathPolicy}) applied
 * to a real target path, with the owner of what is there looked up in the whole filelist. Called
 * by `permissions.ts#permits` for every path action.
 *
 * - `list`/`download` of a path the user may not see is let through: the session's filelist view
 *   (`visibility.ts`) then answers exactly as for a missing path.
 * - `upload`/`makedir` need the folder they write into to be visible.
 * - `delete`/`rename` need the entry visible; one's own entry needs `delete_own`/`rename_own`, a
 *   rename's new name (nothing there yet) `rename_own` too, someone else's `delete`/`rename`.
 * - An upload over someone else's file needs `overwrite` as well.
 */
import { parentOf } from "../../shared/paths.ts";
import type { PathAction } from "../../shared/config_types.ts";
import type { Filelist } from "../filelist/types.ts";
import type { PathPolicy } from "./path_rules.ts";
import type { User } from "./users.ts";
import { unfiltered } from "./visibility.ts";

/** Whether `user` may do `action` on `path` under `paths`, `filelist` giving owners. */
export async function pathAllowed(
  paths: PathPolicy,
  filelist: Filelist,
  user: User,
  action: PathAction,
  path: string,
): Promise<boolean> {
  if (user.admin) return true;
  const owner = async () => (await unfiltered(filelist).get(path))?.owner ?? null;
  switch (action) {
    case "list":
    case "download":
      return !paths.visible(user, path) || paths.allows(user, action, path);
    case "makedir":
      return paths.visible(user, parentOf(path)) && paths.allows(user, "makedir", path);
    case "upload":
    case "overwrite":
      return paths.visible(user, parentOf(path)) &&
        paths.decide(user, "upload", path, await owner());
    case "delete":
    case "rename": {
      if (!paths.visible(user, path)) return false; // what one cannot see, one cannot change
      const o = await owner();
      if (o === null) return action === "delete" || paths.allows(user, "rename_own", path);
      return paths.decide(user, action, path, o);
    }
    default:
      return paths.allows(user, action, path);
  }
}
