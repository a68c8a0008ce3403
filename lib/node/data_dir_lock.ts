/**
 * One process per data dir: `plumise serve` holds an exclusive lock on `<data dir>/serve.lock` for
 * as long as it runs (the OS drops it when the process dies, however it dies) and writes its pid
 * to `<data dir>/serve.pid` for the message a second process gets. Two processes on one data dir
 * would share one peer identity and appear to the swarm as one server (docs/operations.md).
 * @module
 */
import { ConfigError, errorMessage } from "../errors.ts";
import { writeTextAtomic } from "../util/write_text_atomic.ts";
import { dirname, resolve } from "node:path";

export const LOCK_FILE = "serve.lock";
export const PID_FILE = "serve.pid";

export interface DataDirLock {
  readonly dir: string;
  /** This process's pid (written to the pid file). */
  readonly pid: number;
  /** Unlocks and removes the pid file. Idempotent. */
  release(): Promise<void>;
  /** Whether other users may write in the data dir (where the identity and keystore may live). */
  readonly writableByOthers: boolean;
}

const HINT =
  "stop that process, or give this one its own data dir with --data-dir <dir> (PLUMISE_DATA_DIR); " +
  "each serve process needs its own, since its peer identity lives there";

async function readPid(dir: string): Promise<number | undefined> {
  try {
    const text = (await Deno.readTextFile(`${dir}/${PID_FILE}`)).trim();
    return /^\d{1,10}$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

function unusable(dir: string, err: unknown): ConfigError {
  // Deno's own refusal (paths under /proc, /dev, /sys) suggests --allow-all, which is not the user's to pass
  const why = err instanceof Deno.errors.NotCapable
    ? "the runtime does not let the node write there (/proc, /dev and /sys are off limits)"
    : errorMessage(err);
  return new ConfigError("DATA_DIR_UNUSABLE", `cannot use data dir ${dir}: ${why}`, {
    hint: "choose a directory this user can create and write with --data-dir <dir> (PLUMISE_DATA_DIR)",
    cause: err,
  });
}

/**
 * Creates `dir` (mode 0700) when missing and takes its lock without waiting. Throws ConfigError
 * `DATA_DIR_LOCKED` (exit 2) naming the holder's pid when another process holds it, and
 * `DATA_DIR_UNUSABLE` when the directory cannot be created or written.
 */
export async function lockDataDir(
  dir: string,
  options: { identityPath?: string } = {},
): Promise<DataDirLock> {
  const lock = await lockDir(dir);
  // a peer identity kept outside the data dir (PETALS_IDENTITY_PATH) is locked too: two nodes with
  // one peer id, on two data dirs, would each take the other's place in the swarm
  // (also inside the data dir: another node's PETALS_IDENTITY_PATH may name it)
  const id = options.identityPath;
  let held: Deno.FsFile | undefined;
  try {
    held = id ? await lockIdentity(id) : undefined;
  } catch (err) {
    await lock.release();
    throw err;
  }
  if (!held) return lock;
  const file = held;
  let released = false;
  return {
    ...lock,
    async release() {
      if (released) return;
      released = true;
      await file.unlock().catch(() => {});
      file.close();
      await lock.release();
    },
  };
}

/**
 * Locks `<id>.lock` beside the peer identity `id` (its directory made first): the held file, or
 * undefined where no lock file can be opened at all (a key mounted read-only, a container's
 * secret: served unlocked). Throws IDENTITY_LOCKED when another process holds it.
 */
async function lockIdentity(id: string): Promise<Deno.FsFile | undefined> {
  const path = `${id}.lock`;
  let file: Deno.FsFile | undefined;
  try {
    await Deno.mkdir(dirname(resolve(id)), { recursive: true, mode: 0o700 });
    file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 }).catch((err) => {
      if (!(err instanceof Deno.errors.PermissionDenied || /read-only/i.test(errorMessage(err)))) throw err;
      // another user's lock file (mode 0600), or a read-only mount: a lock held through a
      // read-only handle is as exclusive
      return Deno.open(path, { read: true }).catch(() => undefined);
    });
    if (!file || (await file.tryLock(true))) return file;
  } catch (err) {
    file?.close();
    throw new ConfigError("DATA_DIR_UNUSABLE", `cannot lock the peer identity ${id}: ${errorMessage(err)}`, {
      hint: "point PETALS_IDENTITY_PATH at a file in a directory this user may create and write",
      cause: err,
    });
  }
  file.close();
  throw new ConfigError(
    "IDENTITY_LOCKED",
    `the peer identity ${id} is in use by another plumise serve process (another data dir)`,
    { hint: "give each node its own PETALS_IDENTITY_PATH (or leave it in each node's data dir)" },
  );
}

async function lockDir(dir: string): Promise<DataDirLock> {
  let file: Deno.FsFile;
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    file = await Deno.open(`${dir}/${LOCK_FILE}`, { read: true, write: true, create: true, mode: 0o600 });
  } catch (err) {
    throw unusable(dir, err);
  }
  let locked = false;
  try {
    locked = await file.tryLock(true);
  } catch (err) {
    file.close();
    throw unusable(dir, err);
  }
  if (!locked) {
    file.close();
    const pid = await readPid(dir);
    throw new ConfigError(
      "DATA_DIR_LOCKED",
      `data dir ${dir} is in use by another plumise serve process (pid ${pid ?? "unknown"})`,
      { hint: HINT, details: { dataDir: dir, pid: pid ?? null } },
    );
  }
  const pid = Deno.pid;
  try {
    // through a new file renamed over it: a symlink planted at serve.pid (in a shared or
    // world-writable data dir) is replaced, never written through
    await writeTextAtomic(`${dir}/${PID_FILE}`, `${pid}\n`, { mode: 0o600 });
  } catch (err) {
    await file.unlock().catch(() => {});
    file.close();
    throw unusable(dir, err);
  }
  let released = false;
  const mode = (await Deno.stat(dir).catch(() => undefined))?.mode;
  return {
    dir,
    pid,
    writableByOthers: mode !== null && mode !== undefined && (mode & 0o022) !== 0,
    async release() {
      if (released) return;
      released = true;
      // Remove the pid file only while it is still ours (and before unlocking, so that it never
      // names this process while another one holds the lock).
      if ((await readPid(dir)) === pid) await Deno.remove(`${dir}/${PID_FILE}`).catch(() => {});
      await file.unlock().catch(() => {});
      file.close();
    },
  };
}
