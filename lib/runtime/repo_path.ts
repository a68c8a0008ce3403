/**
 * Names from outside that become paths in the model cache: a checkpoint's file names (its index's
 * `weight_map`, from the repo), and what the hub answers (`X-Repo-Commit`, the ETag that names a
 * blob). A hostile repo or endpoint must not reach outside the cache with `..`, an absolute path
 * or a backslash (docs/security.md, "Model downloads").
 * @module
 */

/** Control characters (NUL included) and the backslash: no part of a file name in a repo. */
// deno-lint-ignore no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f\\]/;

const encoder = new TextEncoder();

/**
 * Whether `path` is a relative path inside a repo: `/`-separated, no empty, `.` or `..` segment,
 * no control character or backslash, at most 1024 characters and 255 bytes a segment (a file
 * name's limit on Linux and macOS).
 */
export function isRepoRelativePath(path: string): boolean {
  if (typeof path !== "string" || path.length === 0 || path.length > 1024 || FORBIDDEN.test(path)) {
    return false;
  }
  return path.split("/").every((s) => s !== "" && s !== "." && s !== ".." && encoder.encode(s).length <= 255);
}

/** Whether `name` is one plain file name (letters, digits, `.`, `_`, `-`; not `.` or `..`), ≤ 128. */
export function isPlainName(name: string): boolean {
  return typeof name === "string" && /^[A-Za-z0-9._-]{1,128}$/.test(name) && name !== "." && name !== "..";
}
