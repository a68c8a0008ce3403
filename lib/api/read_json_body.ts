/**
 * Reads a request body as JSON with a size cap enforced while reading: a body larger than the cap
 * is refused after at most `cap` bytes (never buffered whole), a declared `Content-Length` over the
 * cap is refused before reading anything.
 * @module
 */
import { ApiError } from "../errors.ts";

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** Reads and parses `request`'s body; throws `ApiError` 413 (too large) or 400 (not JSON / not an object). */
export async function readJsonBody(
  request: Request,
  maxBytes = DEFAULT_MAX_BODY_BYTES,
): Promise<Record<string, unknown>> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    await request.body?.cancel().catch(() => {});
    throw tooLarge(`${declared} bytes (Content-Length)`, maxBytes);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    const reader = request.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.byteLength;
        if (size > maxBytes) {
          await reader.cancel().catch(() => {});
          throw tooLarge(`more than ${maxBytes} bytes`, maxBytes);
        }
        chunks.push(value);
      }
    } finally {
      reader.releaseLock();
    }
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new ApiError(400, "INVALID_JSON", "request body is not valid UTF-8", {
      hint: "send a UTF-8 encoded JSON object",
      cause,
    });
  }
  if (text.trim() === "") {
    throw new ApiError(400, "INVALID_JSON", "request body is empty", { hint: "send a JSON object" });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ApiError(400, "INVALID_JSON", `request body is not valid JSON: ${(cause as Error).message}`, {
      hint: 'send a JSON object, e.g. {"inputs": "Hello"}',
      cause,
    });
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ApiError(400, "INVALID_JSON", `request body must be a JSON object, got ${describe(value)}`, {
      hint: 'send a JSON object, e.g. {"inputs": "Hello"}',
    });
  }
  return value as Record<string, unknown>;
}

function tooLarge(what: string, maxBytes: number): ApiError {
  return new ApiError(
    413,
    "BODY_TOO_LARGE",
    `request body too large: ${what}, the limit is ${maxBytes} bytes`,
    {
      hint: "send a shorter prompt",
      details: { maxBytes },
    },
  );
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return `a ${typeof v}`;
}
