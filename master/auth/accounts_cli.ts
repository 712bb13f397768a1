/**
 * `drftpd user ...` and `drftpd group ...`: what each does to the KV store, and what it prints.
 * Works the same whether the master runs or not (both open the same KV file; the master reads
 * a user's record at each login).
 */
import type { AccountCommand } from "../../shared/cli.ts";
import { applyField, formatUserLines, formatUserSummary } from "./user_fields.ts";
import type { UserStore } from "./users.ts";
import { unlockAccount } from "./login_guard.ts";

/**
 * Runs one account command on `users`; returns the lines to print. Throws TypeError for bad
 * input (a name, field or value), NotFoundError / UserExistsError / Error otherwise.
 */
export async function runAccountCommand(
  cmd: AccountCommand,
  users: UserStore,
  kv: Deno.Kv,
): Promise<string[]> {
  switch (cmd.kind) {
    case "user-unlock":
      return [
        (await unlockAccount(kv, cmd.name))
          ? `Unlocked ${cmd.name}`
          : `${cmd.name} was not locked (no failed-login lock on record)`,
      ];
    case "user-add": {
      const options = cmd.groups.length > 0
        ? { groups: cmd.groups, admin: cmd.admin }
        : { admin: cmd.admin };
      const u = await users.add(cmd.name, cmd.password, options);
      return [`Added user ${formatUserSummary(u)}`];
    }
    case "user-list":
      return (await users.list()).map(formatUserSummary);
    case "user-del":
      if (!(await users.remove(cmd.name))) throw new Error(`No such user: "${cmd.name}"`);
      return [`Deleted user ${cmd.name}`];
    case "user-passwd":
      await users.setPassword(cmd.name, cmd.password);
      return [`Password of ${cmd.name} changed`];
    case "user-show": {
      const u = await users.get(cmd.name);
      if (!u) throw new Error(`No such user: "${cmd.name}"`);
      return formatUserLines(u);
    }
    case "user-change": {
      const u = await users.change(cmd.name, (s) => {
        for (const [field, value] of cmd.changes) applyField(s, field, value);
      });
      return formatUserLines(u);
    }
    case "group-add": {
      const g = await users.addGroup(cmd.name, cmd.description);
      return [`Added group ${g.name}`];
    }
    case "group-del":
      if (!(await users.removeGroup(cmd.name))) throw new Error(`No such group: "${cmd.name}"`);
      return [`Deleted group ${cmd.name}`];
    case "group-list": {
      const groups = await users.listGroups();
      const all = await users.list();
      return groups.map((g) =>
        `${g.name} members=${all.filter((u) => u.groups.includes(g.name)).length} description=${
          JSON.stringify(g.description)
        }`
      );
    }
    case "group-show": {
      const g = await users.getGroup(cmd.name);
      if (!g) throw new Error(`No such group: "${cmd.name}"`);
      const members = await users.members(cmd.name);
      return [
        `name: ${g.name}`,
        `description: ${g.description}`,
        `created: ${new Date(g.created).toISOString()}`,
        `members: ${members.map((u) => u.name).join(" ")}`,
        `group_admins: ${
          (await users.list()).filter((u) => u.groupAdmin === g.name).map((u) => u.name).join(" ")
        }`,
      ];
    }
  }
}
