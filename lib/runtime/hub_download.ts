/**
 * Hugging Face hub downloads into the standard HF cache, shared with Python tools:
 *   $HF_HOME/hub/models--org--name/{blobs/<etag>, snapshots/<commit>/<file> → ../../blobs/<etag>, refs/<revision>}
 * A file already in the snapshot is returned without any request (when the revision's commit is
 * known from refs/ or the revision is a commit id). Downloads follow the hub's redirect, send the
 * token only to the hub's own origin, resume `<blob>.incomplete` files with a Range request,
 * retry interrupted transfers, check the size and (for LFS files) the sha256 etag.
 *
 * Why not @huggingface/hub: its cache download does not resume partial files nor report progress
 * per chunk in a way the CLI can draw; the client needed here is small.
 * @module
 */
import { createHash } from "node:crypto";
import { HubError } from "../errors.ts";
import { type AbortOptions, sleep } from "../util/abort.ts";
import type { Logger } from "../util/logger.ts";
import { silentLogger } from "../util/logger.ts";
import { isPlainName, isRepoRelativePath } from "./repo_path.ts";
import { cacheFailure } from "./cache_failure.ts";

export interface DownloadProgress {
  readonly repo: string;
  readonly file: string;
  readonly received: number;
  readonly total: number;
  readonly done: boolean;
}

export interface HubFileOptions {
  repo: string;
  file: string;
  revision?: string;
  endpoint?: string;
  token?: string;
  /** HF home; the cache is `${hfHome}/hub`. */
  hfHome: string;
  signal?: AbortSignal;
  logger?: Logger;
  onProgress?: (p: DownloadProgress) => void;
  /** Timeout for response headers, ms (default 30 000). */
  timeoutMs?: number;
  /** Abort a transfer that receives nothing for this long, ms (default 60 000). */
  idleTimeoutMs?: number;
  /** Attempts for an interrupted transfer (default 5). */
  attempts?: number;
  /** Return undefined instead of throwing when the hub says the file does not exist. */
  optional?: boolean;
}

const COMMIT_RE = /^[0-9a-f]{40}$/;
/** The hint of an answer no Hugging Face hub gives. */
const NOT_A_HUB = "HF_ENDPOINT answers what no Hugging Face hub does; check that it is one you trust";
/** Least bytes a download brings per idle period (`idleTimeoutMs`) before it counts as stalled. */
const MIN_BYTES_PER_IDLE = 64 * 1024;
const SHA256_RE = /^[0-9a-f]{64}$/;

/** `models--org--name` directory of a repo in the cache. */
export function repoCacheDir(hfHome: string, repo: string): string {
  return `${hfHome}/hub/models--${repo.split("/").join("--")}`;
}

async function exists(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

async function readRef(dir: string, revision: string): Promise<string | undefined> {
  if (COMMIT_RE.test(revision)) return revision;
  try {
    const c = (await Deno.readTextFile(`${dir}/refs/${revision}`)).trim();
    return COMMIT_RE.test(c) ? c : undefined;
  } catch {
    return undefined;
  }
}

/** The cached snapshot path of a file, if present (no network). */
export async function cachedFile(
  hfHome: string,
  repo: string,
  file: string,
  revision = "main",
): Promise<string | undefined> {
  if (!isRepoRelativePath(file) || !isRepoRelativePath(revision)) return undefined;
  const dir = repoCacheDir(hfHome, repo);
  const commit = await readRef(dir, revision);
  if (!commit) return undefined;
  const p = `${dir}/snapshots/${commit}/${file}`;
  return (await exists(p))?.isFile ? p : undefined;
}

function cleanEtag(e: string | null): string | undefined {
  if (!e) return undefined;
  return e.replace(/^W\//, "").replace(/"/g, "");
}

function httpError(res: Response, repo: string, file: string, revision: string): HubError {
  const code = res.headers.get("x-error-code") ?? "";
  const what = `${repo}/${file} (revision ${revision})`;
  if (res.status === 401 || res.status === 403) {
    return new HubError(
      "HUB_UNAUTHORIZED",
      `the hub refused ${what}: HTTP ${res.status}${code ? ` ${code}` : ""}`,
      {
        hint:
          "set HF_TOKEN to a token with access to this repo (and accept its license on the hub if it is gated)",
        details: { repo, file, revision, status: res.status },
      },
    );
  }
  if (res.status === 404) {
    const msg = code === "RepoNotFound"
      ? `repo ${repo} not found on the hub`
      : code === "RevisionNotFound"
      ? `revision ${revision} of ${repo} not found on the hub`
      : `file ${file} not found in ${repo} (revision ${revision})`;
    return new HubError("HUB_NOT_FOUND", msg, {
      hint: "check the model id, the revision and HF_ENDPOINT",
      details: { repo, file, revision, status: 404, errorCode: code },
    });
  }
  return new HubError("HUB_HTTP_ERROR", `the hub answered HTTP ${res.status} for ${what}`, {
    hint: "retry later; check HF_ENDPOINT",
    details: { repo, file, revision, status: res.status },
  });
}

/** fetch with a header timeout chained to the caller's signal. */
async function fetchWithTimeout(
  url: string,
  init: RequestInit,
  { ms, what, signal }: AbortOptions & { ms: number; what: string },
): Promise<Response> {
  const ctl = new AbortController();
  const timer = setTimeout(
    () =>
      ctl.abort(
        new HubError("HUB_TIMEOUT", `no answer from the hub for ${what} within ${ms} ms`, {
          hint: "check the network and HF_ENDPOINT",
        }),
      ),
    ms,
  );
  const onAbort = () => ctl.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await fetch(url, { ...init, signal: ctl.signal });
  } catch (cause) {
    if (signal?.aborted) throw signal.reason;
    if (ctl.signal.aborted) throw ctl.signal.reason;
    // fetch's own message is "fetch failed"; why (a DNS failure, a refused connection) is its cause's
    const why = [cause, (cause as Error).cause].filter((e) => e instanceof Error).map((e) =>
      (e as Error).message
    );
    throw new HubError("HUB_UNREACHABLE", `cannot reach the hub for ${what}: ${why.join(": ")}`, {
      hint: "check the network and HF_ENDPOINT",
      cause,
    });
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  using f = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1 << 20);
  while (true) {
    const n = await f.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
  }
  return h.digest("hex");
}

async function linkSnapshot(dir: string, commit: string, file: string, etag: string): Promise<string> {
  const snap = `${dir}/snapshots/${commit}/${file}`;
  const parent = snap.slice(0, snap.lastIndexOf("/"));
  await Deno.mkdir(parent, { recursive: true });
  const depth = file.split("/").length + 1; // snapshots/<commit>/<file parts>
  const target = `${"../".repeat(depth)}blobs/${etag}`;
  try {
    await Deno.remove(snap);
  } catch {
    // not there
  }
  try {
    await Deno.symlink(target, snap);
  } catch {
    await Deno.copyFile(`${dir}/blobs/${etag}`, snap);
  }
  return snap;
}

/**
 * Returns the local path of `file` of a hub repo, downloading it into the HF cache if needed.
 * Throws HubError (HUB_NOT_FOUND, HUB_UNAUTHORIZED, HUB_HTTP_ERROR, HUB_UNREACHABLE, HUB_TIMEOUT,
 * HUB_CORRUPT) naming the repo and file.
 */
export async function hubFile(options: HubFileOptions & { optional: true }): Promise<string | undefined>;
export async function hubFile(options: HubFileOptions): Promise<string>;
export async function hubFile(o: HubFileOptions): Promise<string | undefined> {
  try {
    return await fetchHubFile(o);
  } catch (err) {
    throw cacheFailure(err, o.hfHome) ?? err;
  }
}

async function fetchHubFile(o: HubFileOptions): Promise<string | undefined> {
  const revision = o.revision ?? "main";
  const endpoint = (o.endpoint ?? "https://huggingface.co").replace(/\/+$/, "");
  const log = (o.logger ?? silentLogger).child({ repo: o.repo, file: o.file });
  const what = `${o.repo}/${o.file}`;
  for (const [name, value] of [["file", o.file], ["revision", revision]]) {
    if (isRepoRelativePath(value)) continue;
    throw new HubError(
      "HUB_BAD_PATH",
      `${name} ${JSON.stringify(value)} of ${o.repo} would leave its cache folder`,
      {
        hint: name === "file"
          ? "the checkpoint names a file outside its repo (a `..`, an absolute path or a backslash): do not serve it"
          : "set REVISION to a branch, tag or commit id",
        details: { repo: o.repo, [name]: value },
      },
    );
  }
  const dir = repoCacheDir(o.hfHome, o.repo);
  const cached = await cachedFile(o.hfHome, o.repo, o.file, revision);
  if (cached) return cached;

  const url = `${endpoint}/${o.repo.split("/").map(encodeURIComponent).join("/")}/resolve/${
    encodeURIComponent(revision)
  }/${o.file.split("/").map(encodeURIComponent).join("/")}`;
  const auth: Record<string, string> = o.token ? { authorization: `Bearer ${o.token}` } : {};
  // HEAD without following redirects; relative (same-origin) redirects — the hub uses them for
  // renamed repos and its resolve cache — are followed, an absolute one (LFS → CDN) is where the
  // bytes come from, as huggingface_hub does.
  let headUrl = url;
  let head: Response;
  for (let hops = 0;; hops++) {
    head = await fetchWithTimeout(
      headUrl,
      { method: "HEAD", redirect: "manual", headers: { ...auth, "accept-encoding": "identity" } },
      { ms: o.timeoutMs ?? 30_000, what, signal: o.signal },
    );
    await head.body?.cancel();
    const loc = head.headers.get("location");
    if (head.status < 300 || head.status >= 400 || !loc || hops >= 5) break;
    const next = new URL(loc, headUrl);
    if (next.origin !== new URL(headUrl).origin || head.headers.get("x-linked-etag")) break;
    headUrl = next.href;
  }
  if (head.status === 404 && o.optional) return undefined;
  const isRedirect = head.status >= 300 && head.status < 400;
  if (!head.ok && !isRedirect) throw httpError(head, o.repo, o.file, revision);
  const commit = head.headers.get("x-repo-commit") ?? (COMMIT_RE.test(revision) ? revision : undefined);
  const etag = cleanEtag(head.headers.get("x-linked-etag") ?? head.headers.get("etag"));
  const sizeHeader = head.headers.get("x-linked-size") ?? head.headers.get("content-length");
  const total = sizeHeader === null ? NaN : Number(sizeHeader);
  if (sizeHeader !== null && !(Number.isSafeInteger(total) && total >= 0)) {
    throw new HubError(
      "HUB_HTTP_ERROR",
      `the hub's size for ${what} is ${JSON.stringify(sizeHeader)}: not a byte count`,
      {
        hint: NOT_A_HUB,
        details: { repo: o.repo, file: o.file },
      },
    );
  }
  if (!commit || !etag || !Number.isFinite(total)) {
    throw new HubError(
      "HUB_HTTP_ERROR",
      `the hub's answer for ${what} lacks X-Repo-Commit/ETag/size headers`,
      {
        hint: "HF_ENDPOINT does not look like a Hugging Face hub",
        details: { repo: o.repo, file: o.file },
      },
    );
  }
  // both name paths in the cache (snapshots/<commit>/, blobs/<etag>)
  if (!isPlainName(commit) || !isPlainName(etag)) {
    throw new HubError(
      "HUB_BAD_PATH",
      `the hub's answer for ${what} names commit ${JSON.stringify(commit)} and ETag ${
        JSON.stringify(etag)
      }: not plain names`,
      {
        hint: NOT_A_HUB,
        details: { repo: o.repo, file: o.file, commit, etag },
      },
    );
  }
  let location = headUrl;
  if (isRedirect) {
    const loc = head.headers.get("location");
    if (!loc) {
      throw new HubError("HUB_HTTP_ERROR", `redirect without Location for ${what}`, {
        hint: "HF_ENDPOINT misbehaves",
      });
    }
    location = new URL(loc, headUrl).href;
  }
  // fetch() reads file: URLs: a redirect there would hand a local file (or /dev/zero) over as the repo's
  if (!/^https?:$/.test(new URL(location).protocol)) {
    throw new HubError(
      "HUB_BAD_PATH",
      `the hub sends ${what} to ${JSON.stringify(location)}, not an http(s) URL`,
      {
        hint: NOT_A_HUB,
        details: { repo: o.repo, file: o.file },
      },
    );
  }
  await Deno.mkdir(`${dir}/blobs`, { recursive: true });
  if (revision !== commit) {
    const ref = `${dir}/refs/${revision}`; // a revision such as refs/pr/1 is a nested file
    await Deno.mkdir(ref.slice(0, ref.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(ref, commit);
  }
  const blob = `${dir}/blobs/${etag}`;
  const have = await exists(blob);
  if (have?.isFile && have.size === total) return await linkSnapshot(dir, commit, o.file, etag);

  const partial = `${blob}.incomplete`;
  const sendAuth = new URL(location).origin === new URL(endpoint).origin ? auth : {};
  const attempts = o.attempts ?? 5;
  let lastLog = 0;
  for (let attempt = 1;; attempt++) {
    let received = (await exists(partial))?.size ?? 0;
    if (received > total) {
      await Deno.remove(partial);
      received = 0;
    }
    try {
      if (received < total) {
        const headers: Record<string, string> = { ...sendAuth, "accept-encoding": "identity" };
        if (received > 0) headers.range = `bytes=${received}-`;
        const res = await fetchWithTimeout(
          location,
          { headers, redirect: "follow" },
          { ms: o.timeoutMs ?? 30_000, what, signal: o.signal },
        );
        if (!res.ok) {
          await res.body?.cancel();
          throw httpError(res, o.repo, o.file, revision);
        }
        if (received > 0 && res.status !== 206) received = 0; // server ignored the range: start over
        if (received > 0) log.info("resuming download", { from: received, total });
        using f = await Deno.open(partial, {
          write: true,
          create: true,
          truncate: received === 0,
          append: received > 0,
        });
        const reader = res.body!.getReader();
        const idleMs = o.idleTimeoutMs ?? 60_000;
        // a trickle (a byte a minute) never trips the idle timer: each idle period must bring a
        // little (`MIN_BYTES_PER_IDLE`) or the transfer is dropped and tried again
        let windowStart = Date.now(), windowBytes = 0;
        const aborted = o.signal
          ? [
            new Promise<never>((_, reject) =>
              o.signal!.addEventListener("abort", () => reject(o.signal!.reason), { once: true })
            ),
          ]
          : [];
        aborted.forEach((p) => p.catch(() => {}));
        while (true) {
          let timer: ReturnType<typeof setTimeout> | undefined;
          const chunk = await Promise.race([
            reader.read(),
            new Promise<never>((_, reject) => {
              timer = setTimeout(
                () =>
                  reject(
                    new HubError("HUB_TIMEOUT", `download of ${what} stalled for ${idleMs} ms`, {
                      hint: "retry; check the network",
                    }),
                  ),
                idleMs,
              );
            }),
            ...aborted,
          ]).finally(() => clearTimeout(timer));
          if (chunk.done) break;
          if (received + chunk.value.length > total) {
            await reader.cancel().catch(() => {});
            await Deno.remove(partial).catch(() => {});
            throw new HubError(
              "HUB_CORRUPT",
              `the hub sends more of ${what} than the ${total} bytes it announced`,
              {
                hint:
                  "HF_ENDPOINT answers what no Hugging Face hub does; run again, or check that it is one you trust",
                details: { repo: o.repo, file: o.file },
              },
            );
          }
          let off = 0;
          while (off < chunk.value.length) off += await f.write(chunk.value.subarray(off));
          received += chunk.value.length;
          windowBytes += chunk.value.length;
          if (Date.now() - windowStart >= idleMs) {
            if (windowBytes < MIN_BYTES_PER_IDLE) {
              await reader.cancel().catch(() => {});
              throw new HubError(
                "HUB_TIMEOUT",
                `download of ${what} brought ${windowBytes} bytes in ${idleMs} ms: too slow`,
                { hint: "retry; check the network" },
              );
            }
            windowStart = Date.now();
            windowBytes = 0;
          }
          const now = Date.now();
          if (o.onProgress) o.onProgress({ repo: o.repo, file: o.file, received, total, done: false });
          else if (now - lastLog > 5000) {
            lastLog = now;
            log.info("downloading", {
              received,
              total,
              percent: Math.floor((100 * received) / Math.max(1, total)),
            });
          }
        }
      }
      if (total === 0) await Deno.writeFile(partial, new Uint8Array());
      const size = (await Deno.stat(partial)).size;
      if (size !== total) {
        throw new HubError("HUB_INTERRUPTED", `download of ${what} ended at ${size} of ${total} bytes`, {
          hint: "it is retried and resumed",
        });
      }
      break;
    } catch (err) {
      const retriable = !(err instanceof HubError)
        ? !cacheFailure(err, o.hfHome)
        : ["HUB_INTERRUPTED", "HUB_TIMEOUT", "HUB_UNREACHABLE"].includes(err.code);
      if (o.signal?.aborted || !retriable || attempt >= attempts) {
        if (err instanceof HubError || !retriable) throw err;
        throw new HubError(
          "HUB_INTERRUPTED",
          `download of ${what} failed after ${attempt} attempts: ${(err as Error).message}`,
          {
            hint: "retry; the partial file is kept and resumed",
            cause: err,
          },
        );
      }
      log.warn("download interrupted, resuming", { attempt, error: (err as Error).message });
      await sleep(Math.min(200 * 2 ** (attempt - 1), 5000), { signal: o.signal });
    }
  }
  if (SHA256_RE.test(etag)) {
    const got = await sha256File(partial);
    if (got !== etag) {
      await Deno.remove(partial);
      throw new HubError("HUB_CORRUPT", `${what}: sha256 ${got} does not match the hub's ${etag}`, {
        hint: "the download was corrupted; run again to download it afresh",
        details: { repo: o.repo, file: o.file },
      });
    }
  }
  await Deno.rename(partial, blob);
  o.onProgress?.({ repo: o.repo, file: o.file, received: total, total, done: true });
  log.debug("downloaded", { bytes: total });
  return await linkSnapshot(dir, commit, o.file, etag);
}
