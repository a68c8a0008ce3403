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

/**
 * Creates `path` with `data`, never over an existing file, so that nobody ever sees it half
 * written (a full disk leaves no empty keystore behind): the data goes to a temporary file beside
 * it, which is then hard-linked to `path` (failing with `Deno.errors.AlreadyExists` when it is
 * there) and removed.
 */
export async function createFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: { mode?: number } = {},
): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  try {
    const o = { createNew: true, ...(options.mode === undefined ? {} : { mode: options.mode }) };
    if (typeof data === "string") await Deno.writeTextFile(tmp, data, o);
    else await Deno.writeFile(tmp, data, o);
    if (options.mode !== undefined && Deno.build.os !== "windows") await Deno.chmod(tmp, options.mode);
    try {
      await Deno.link(tmp, path);
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) throw err;
      // a file system without hard links (FAT, some FUSE mounts): the name is claimed with an
      // exclusive create (AlreadyExists when another writer has it), then renamed over
      (await Deno.open(path, { createNew: true, write: true })).close();
      await Deno.rename(tmp, path);
    }
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}
