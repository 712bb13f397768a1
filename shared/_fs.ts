/** Small file-system helpers used by shared modules. */

/** `Deno.realPath`, or null when the path does not exist. */
export async function realPath(path: string): Promise<string | null> {
  try {
    return await Deno.realPath(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
    throw e;
  }
}
