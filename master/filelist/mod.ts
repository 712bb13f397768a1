/**
 * The filelist: what the master knows about every directory and file, stored in Deno KV.
 *
 * ```ts
 * const kv = await Deno.openKv(path); // opened once, by main.ts
 * const filelist: Filelist = new KvFilelist(kv);
 * ```
 */
export * from "./types.ts";
export { KvFilelist } from "./kv_filelist.ts";
