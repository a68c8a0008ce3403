/**
 * Writing a file so that a reader never sees half of it: the text goes to a temporary file beside
 * it, which is then renamed over it (an atomic replace on one file system).
 * @module
 */

/**
 * Writes `text` to `path` through a temporary file renamed into place; with `mode`, the file has
 * exactly that mode (the umask does not narrow it). The temporary file is removed on failure, and
 * the error thrown.
 */
export async function writeTextAtomic(
  path: string,
  text: string,
  options: { mode?: number } = {},
): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  try {
    await Deno.writeTextFile(tmp, text, options.mode === undefined ? {} : { mode: options.mode });
    if (options.mode !== undefined && Deno.build.os !== "windows") await Deno.chmod(tmp, options.mode);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}
