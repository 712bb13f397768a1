/**
 * SITE SLAVESELECT: how `[selection]` ranks the slaves for an upload or a download of a path
 * (`master/slaves/selection.ts` decides and formats; this only asks).
 *
 * @module
 */
import { formatRanking, type SlaveWanted } from "../slaves/selection.ts";
import { splitWord } from "./codecs.ts";
import { FtpError } from "./errors.ts";
import { FILE_UNAVAILABLE, OK, SYNTAX_ERROR_ARGS } from "./replies.ts";
import type { Session } from "./session.ts";

/**
 * SITE SLAVESELECT up|down <path>: one line per known slave with its score and each term, or why
 * it is excluded (offline, below min_free, max_transfers reached, excluded by a rule, not a
 * holder). `up` is a new upload (or an overwrite, when the file exists); `down` needs the file.
 */
export async function siteSlaveSelect(s: Session, arg: string, path: string | null): Promise<void> {
  const way = splitWord(arg).word.toLowerCase();
  if ((way !== "up" && way !== "down") || path === null) {
    throw new FtpError(SYNTAX_ERROR_ARGS, "Usage: SITE SLAVESELECT up|down <path>");
  }
  const entry = await s.services.filelist.get(path);
  const file = entry?.kind === "file" ? entry : null;
  if (way === "down" && file === null) {
    throw new FtpError(FILE_UNAVAILABLE, `No such file: ${path}`);
  }
  const want: SlaveWanted = {
    kind: way === "down" ? "download" : "upload",
    path,
    holders: file?.slaves ?? [],
  };
  const registry = s.services.slaves;
  const ranking = await registry.rank(want);
  const may = ranking.slaves.filter((a) => a.excluded === null).length;
  await s.reply(OK, [
    ...formatRanking(ranking, { want, policy: registry.policy }),
    `${ranking.slaves.length} slaves known, ${may} may serve`,
  ]);
}
