/**
 * One HTTP exchange with the Oracle: timeout, size-capped body, JSON parsed defensively,
 * the server's `Date` header returned for the skew check.
 * @module
 */
import { errorMessage, ReporterError } from "../errors.ts";
import { isAbort, timeoutSignal } from "../util/abort.ts";

const MAX_BODY = 64 * 1024;

/**
 * The URL of an Oracle endpoint (`path`, from its root) under `oracleUrl`, keeping the base's path
 * (an Oracle behind a reverse proxy's prefix) and its query (a key a proxy wants).
 */
export function oracleEndpoint(oracleUrl: string, path: string): string {
  const url = new URL(oracleUrl);
  url.pathname = url.pathname.replace(/\/+$/, "") + "/" + path.replace(/^\/+/, "");
  return url.href;
}

export interface OracleReply {
  readonly status: number;
  /** Parsed JSON, or undefined when the body is not JSON. */
  readonly json: unknown;
  /** Raw text (truncated) for messages. */
  readonly text: string;
  /** Server time in unix ms from the `Date` header, when present and valid. */
  readonly serverTimeMs?: number;
}

async function readCapped(res: Response): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > MAX_BODY) {
        await reader.cancel();
        break;
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const all = new Uint8Array(Math.min(size, MAX_BODY));
  let off = 0;
  for (const c of chunks) {
    all.set(c.subarray(0, all.length - off), off);
    off += Math.min(c.length, all.length - off);
  }
  return new TextDecoder().decode(all);
}

export async function oracleRequest(
  url: string,
  init: {
    method: "GET" | "POST";
    body?: unknown;
    timeoutMs: number;
    signal?: AbortSignal;
    fetch?: typeof fetch;
  },
): Promise<OracleReply> {
  const { signal, clear } = timeoutSignal(init.timeoutMs, init.signal);
  try {
    const res = await (init.fetch ?? fetch)(url, {
      method: init.method,
      headers: init.body === undefined ? {} : { "content-type": "application/json" },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal,
    });
    const text = await readCapped(res);
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    const date = Date.parse(res.headers.get("date") ?? "");
    return {
      status: res.status,
      json,
      text: text.slice(0, 300),
      serverTimeMs: Number.isNaN(date) ? undefined : date,
    };
  } catch (err) {
    if (isAbort(err) || signal.aborted) {
      throw new ReporterError(
        "ORACLE_TIMEOUT",
        `${init.method} ${url} got no answer within ${init.timeoutMs} ms`,
        {
          hint: "the Oracle is slow or down; the next report carries the cumulative totals",
          cause: err,
        },
      );
    }
    throw new ReporterError("ORACLE_UNREACHABLE", `${init.method} ${url} failed: ${errorMessage(err)}`, {
      hint: "check ORACLE_API_URL; the next report carries the cumulative totals",
      cause: err,
    });
  } finally {
    clear();
  }
}

/** The Oracle's error message from a reply (`message` field, else the text). */
export function replyMessage(reply: OracleReply): string {
  const j = reply.json as { message?: unknown } | undefined;
  if (j && typeof j === "object") {
    const m = j.message;
    if (typeof m === "string") return m;
    if (Array.isArray(m)) return m.map(String).join("; ");
  }
  return reply.text || `HTTP ${reply.status}`;
}
