/** Test helper: a real on-disk KV in a temp dir, closed and removed on dispose. Internal. */

/** An open temp KV; `reopen()` closes it and opens the same file again. */
export interface TempKv extends AsyncDisposable {
  kv: Deno.Kv;
  path: string;
  reopen(): Promise<Deno.Kv>;
}

/** Opens a fresh KV file in a new temp dir. Use with `await using`. */
export async function tempKv(): Promise<TempKv> {
  const dir = await Deno.makeTempDir({ prefix: "drftpd_filelist_" });
  const path = `${dir}/t.kv`;
  let kv = await Deno.openKv(path);
  let open = true;
  return {
    get kv() {
      return kv;
    },
    path,
    async reopen() {
      kv.close();
      kv = await Deno.openKv(path);
      return kv;
    },
    async [Symbol.asyncDispose]() {
      if (open) kv.close();
      open = false;
      await Deno.remove(dir, { recursive: true });
    },
  };
}
