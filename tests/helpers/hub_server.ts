/**
 * A local stand-in for the Hugging Face hub's file endpoints, for tests that run the download
 * code for real. Serves directories as repos under `/{repo}/resolve/{revision}/{file}` on
 * 127.0.0.1 (port 0) the way the hub does:
 * - LFS files (`*.safetensors`, `*.bin`, `*.onnx`, anything ≥ 1 MiB) answer with a 302 to a
 *   content URL (`/_cdn/{sha256}`) and the headers `X-Repo-Commit`, `X-Linked-Etag` (sha256),
 *   `X-Linked-Size`, `ETag`; the content URL serves the bytes with `ETag`, `Content-Length`,
 *   `Accept-Ranges: bytes` and Range support (206 / 416).
 * - Other files answer 200 directly with `ETag` (the git blob sha1), `X-Repo-Commit`, `Content-Length`.
 * - A missing file is 404 with `X-Error-Code: EntryNotFound`; an unknown repo or revision 404
 *   `RepoNotFound` / `RevisionNotFound`; with `token` set, a request without `Authorization:
 *   Bearer <token>` is 401 (`X-Error-Code: GatedRepo`) — except the content URLs, which like the
 *   real CDN are signed and need no token.
 * Every request is recorded (`requests`), `downloads(file)` counts body transfers of a file, and
 * `interruptNext(file, bytes)` cuts the next transfer of a file after `bytes` bytes.
 * @module
 */
import { createHash } from "node:crypto";

export interface HubRepoSpec {
  /** Directory whose files form the repo (flat or nested). */
  dir: string;
  /** Branch name the repo answers to, default "main". */
  revision?: string;
  /** 40-hex commit id, default derived from the repo name. */
  commit?: string;
}

export interface HubServerOptions {
  repos: Record<string, HubRepoSpec | string>;
  /** When set, resolve requests need `Authorization: Bearer <token>`. */
  token?: string;
  /**
   * Answer non-LFS files with a relative 307 to `/api/resolve-cache/models/{repo}/{commit}/{file}`
   * (as the hub does for renamed repos / its resolve cache); that URL serves the bytes.
   */
  relativeRedirects?: boolean;
}

export interface HubRequest {
  method: string;
  path: string;
  status: number;
  repo?: string;
  file?: string;
  range?: string;
  authorization?: string;
}

interface FileEntry {
  path: string;
  size: number;
  sha256: string;
  gitSha1: string;
  lfs: boolean;
}

interface RepoState {
  dir: string;
  revision: string;
  commit: string;
  files: Map<string, FileEntry>;
}

const isLfs = (name: string, size: number) =>
  /\.(safetensors|bin|onnx|gguf|pt|h5)$/.test(name) || size >= 1 << 20;

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir + (prefix ? "/" + prefix : ""))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await listFiles(dir, rel));
    else if (e.isFile) out.push(rel);
  }
  return out;
}

function sha(algo: string, ...parts: Uint8Array[]): string {
  const h = createHash(algo);
  for (const p of parts) h.update(p);
  return h.digest("hex");
}

export class HubServer implements AsyncDisposable {
  /** Everything the server answered, in order. */
  readonly requests: HubRequest[] = [];
  /** Bearer token required from now on (undefined: none). */
  token?: string;
  readonly #repos = new Map<string, RepoState>();
  readonly #bySha = new Map<string, { repo: string; file: FileEntry }>();
  readonly #interrupts = new Map<string, number>();
  #server?: Deno.HttpServer<Deno.NetAddr>;
  #url = "";

  #relativeRedirects = false;

  private constructor(token?: string) {
    this.token = token;
  }

  /** Starts a server on 127.0.0.1:0 serving `options.repos`. */
  static async start(options: HubServerOptions): Promise<HubServer> {
    const hub = new HubServer(options.token);
    hub.#relativeRedirects = options.relativeRedirects ?? false;
    for (const [name, spec0] of Object.entries(options.repos)) await hub.addRepo(name, spec0);
    const ready = Promise.withResolvers<void>();
    hub.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => ready.resolve() },
      (req) => hub.#handle(req),
    );
    await ready.promise;
    hub.#url = `http://127.0.0.1:${hub.#server.addr.port}`;
    return hub;
  }

  /** Adds (or replaces) a repo; files are hashed now. */
  async addRepo(name: string, spec0: HubRepoSpec | string): Promise<void> {
    const spec = typeof spec0 === "string" ? { dir: spec0 } : spec0;
    const files = new Map<string, FileEntry>();
    for (const rel of await listFiles(spec.dir)) {
      const bytes = await Deno.readFile(`${spec.dir}/${rel}`);
      const entry: FileEntry = {
        path: `${spec.dir}/${rel}`,
        size: bytes.length,
        sha256: sha("sha256", bytes),
        gitSha1: sha("sha1", new TextEncoder().encode(`blob ${bytes.length}\0`), bytes),
        lfs: isLfs(rel, bytes.length),
      };
      files.set(rel, entry);
      this.#bySha.set(entry.sha256, { repo: name, file: entry });
    }
    const commit = spec.commit ?? sha("sha1", new TextEncoder().encode(`commit:${name}`));
    this.#repos.set(name, { dir: spec.dir, revision: spec.revision ?? "main", commit, files });
  }

  /** The endpoint to use as HF_ENDPOINT. */
  get url(): string {
    return this.#url;
  }

  /** The commit id a repo's branch resolves to. */
  commitOf(repo: string): string {
    const r = this.#repos.get(repo);
    if (!r) throw new Error(`no repo ${repo}`);
    return r.commit;
  }

  /** Number of GET requests that transferred (part of) `file`'s bytes (optionally of one repo). */
  downloads(file: string, repo?: string): number {
    return this.requests.filter((r) =>
      r.method === "GET" && (r.status === 200 || r.status === 206) && r.file === file &&
      (!repo || r.repo === repo)
    ).length;
  }

  /** Number of requests of any kind that named `file`. */
  requestsFor(file: string): number {
    return this.requests.filter((r) => r.file === file).length;
  }

  /** The next body transfer of `file` stops after `bytes` bytes with a broken connection. */
  interruptNext(file: string, bytes: number): void {
    this.#interrupts.set(file, bytes);
  }

  async close(): Promise<void> {
    if (this.#server) {
      const s = this.#server;
      this.#server = undefined;
      await s.shutdown();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #record(req: Request, status: number, extra: Partial<HubRequest> = {}): void {
    const range = req.headers.get("range") ?? undefined;
    const authorization = req.headers.get("authorization") ?? undefined;
    this.requests.push({
      method: req.method,
      path: new URL(req.url).pathname,
      status,
      range,
      authorization,
      ...extra,
    });
  }

  #error(
    req: Request,
    status: number,
    code: string,
    message: string,
    extra: Partial<HubRequest> = {},
  ): Response {
    this.#record(req, status, extra);
    return new Response(req.method === "HEAD" ? null : JSON.stringify({ error: message }), {
      status,
      headers: { "content-type": "application/json", "x-error-code": code, "x-error-message": message },
    });
  }

  #handle(req: Request): Promise<Response> | Response {
    const url = new URL(req.url);
    if (req.method !== "GET" && req.method !== "HEAD") {
      return this.#error(req, 405, "MethodNotAllowed", "method not allowed");
    }
    const path = decodeURIComponent(url.pathname);
    if (path.startsWith("/_cdn/")) {
      const hit = this.#bySha.get(path.slice(6));
      if (!hit) return this.#error(req, 404, "EntryNotFound", "no such blob");
      return this.#serveBytes(
        req,
        hit.repo,
        hit.file,
        [...this.#repos.get(hit.repo)!.files].find(([, f]) => f === hit.file)![0],
      );
    }
    const cache = /^\/api\/resolve-cache\/models\/(.+?)\/([0-9a-f]{40})\/(.+)$/.exec(path);
    if (cache) {
      const [, repoName, commit, file] = cache;
      const repo = this.#repos.get(repoName);
      const entry = repo?.commit === commit ? repo.files.get(file) : undefined;
      if (!entry) return this.#error(req, 404, "EntryNotFound", "Entry not found", { repo: repoName, file });
      return this.#serveBytes(req, repoName, entry, file, {
        "x-repo-commit": commit,
        etag: `"${entry.gitSha1}"`,
      });
    }
    const m = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (!m) return this.#error(req, 404, "NotFound", `no route for ${path}`);
    const [, repoName, revision, file] = m;
    const auth = req.headers.get("authorization");
    if (this.token !== undefined && auth !== `Bearer ${this.token}`) {
      return this.#error(
        req,
        401,
        "GatedRepo",
        `Access to model ${repoName} is restricted. You must be authenticated to access it.`,
        {
          repo: repoName,
          file,
        },
      );
    }
    const repo = this.#repos.get(repoName);
    if (!repo) {
      return this.#error(req, 404, "RepoNotFound", `Repository not found: ${repoName}`, {
        repo: repoName,
        file,
      });
    }
    if (revision !== repo.revision && revision !== repo.commit) {
      return this.#error(req, 404, "RevisionNotFound", `Invalid rev id: ${revision}`, {
        repo: repoName,
        file,
      });
    }
    const entry = repo.files.get(file);
    if (!entry) return this.#error(req, 404, "EntryNotFound", "Entry not found", { repo: repoName, file });
    const common = {
      "x-repo-commit": repo.commit,
      "access-control-expose-headers":
        "X-Repo-Commit,X-Linked-Etag,X-Linked-Size,ETag,Content-Length,Content-Range",
    };
    if (entry.lfs) {
      this.#record(req, 302, { repo: repoName, file });
      return new Response(null, {
        status: 302,
        headers: {
          ...common,
          location: `${this.#url}/_cdn/${entry.sha256}?repo=${encodeURIComponent(repoName)}`,
          "x-linked-etag": `"${entry.sha256}"`,
          "x-linked-size": String(entry.size),
          etag: `"${entry.gitSha1}"`,
        },
      });
    }
    if (this.#relativeRedirects) {
      this.#record(req, 307, { repo: repoName, file });
      return new Response(null, {
        status: 307,
        headers: { ...common, location: `/api/resolve-cache/models/${repoName}/${repo.commit}/${file}` },
      });
    }
    return this.#serveBytes(req, repoName, entry, file, { ...common, etag: `"${entry.gitSha1}"` });
  }

  async #serveBytes(
    req: Request,
    repo: string,
    entry: FileEntry,
    file: string,
    extraHeaders: Record<string, string> = {},
  ): Promise<Response> {
    const headers: Record<string, string> = {
      etag: `"${entry.lfs ? entry.sha256 : entry.gitSha1}"`,
      "accept-ranges": "bytes",
      "content-type": "application/octet-stream",
      ...extraHeaders,
    };
    let start = 0;
    let end = entry.size; // exclusive
    let status = 200;
    const range = req.headers.get("range");
    if (range) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(range.trim());
      if (!m || Number(m[1]) >= entry.size) {
        this.#record(req, 416, { repo, file });
        return new Response(null, { status: 416, headers: { "content-range": `bytes */${entry.size}` } });
      }
      start = Number(m[1]);
      if (m[2]) end = Math.min(entry.size, Number(m[2]) + 1);
      status = 206;
      headers["content-range"] = `bytes ${start}-${end - 1}/${entry.size}`;
    }
    headers["content-length"] = String(end - start);
    this.#record(req, status, { repo, file });
    if (req.method === "HEAD") return new Response(null, { status, headers });
    const bytes = (await Deno.readFile(entry.path)).subarray(start, end);
    const cut = this.#interrupts.get(file);
    if (cut !== undefined) {
      this.#interrupts.delete(file);
      const part = bytes.subarray(0, Math.min(cut, bytes.length));
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(part);
        },
        pull(controller) {
          controller.error(new Error("connection cut by the test hub"));
        },
      });
      return new Response(body, { status, headers });
    }
    return new Response(bytes, { status, headers });
  }
}
