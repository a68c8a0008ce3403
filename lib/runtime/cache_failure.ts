/**
 * The model cache's own failures, which no retry of a download mends: a full disk and a
 * directory this user may not write (or a read-only mount), as typed errors naming HF_HOME.
 * @module
 */
import { HubError } from "../errors.ts";

/**
 * The model cache's own failures (a full disk, a directory this user may not write), which no
 * retry mends: HUB_DISK_FULL and HUB_CACHE_UNWRITABLE naming HF_HOME; undefined for any other.
 */
export function cacheFailure(err: unknown, hfHome: string): HubError | undefined {
  if (err instanceof HubError || !(err instanceof Error)) return undefined;
  if (/os error 28\b|No space left/i.test(err.message)) {
    return new HubError(
      "HUB_DISK_FULL",
      `the model cache's disk is full (HF_HOME ${hfHome}): ${err.message}`,
      {
        hint:
          "free space there, or point HF_HOME at a larger disk; `plumise doctor` says what the blocks need",
        cause: err,
      },
    );
  }
  if (
    err instanceof Deno.errors.PermissionDenied || /os error 30\b|read-only file system/i.test(err.message)
  ) {
    return new HubError(
      "HUB_CACHE_UNWRITABLE",
      `cannot write the model cache (HF_HOME ${hfHome}): ${err.message}`,
      {
        hint: "point HF_HOME at a directory this user can write, or fix its permissions",
        cause: err,
      },
    );
  }
  return undefined;
}
