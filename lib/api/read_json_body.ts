/**
 * A request body as a JSON object: its size is capped by the `bodyLimit` guard before it is read
 * here (lib/api/request_guards.ts); this decodes it as UTF-8 and parses it, refusing anything but
 * a JSON object with a 400 that says why.
 * @module
 */
import { ApiError, WireError } from "../errors.ts";
import { checkJsonShape } from "../wire/mod.ts";

/**
 * How deep, and how many values, a request body may hold: ample for chat messages and generation
 * parameters, and checked by a scan of the bytes before `JSON.parse` builds a deep or wide value.
 */
export const BODY_SHAPE = { maxDepth: 32, maxValues: 100_000 } as const;

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** The gateway route's body, the example of a hint where no other is given. */
const GENERATE_EXAMPLE = '{"inputs": "Hello"}';

/**
 * Reads and parses `request`'s body; throws `ApiError` 400 (not UTF-8, empty, not JSON, not an
 * object), whose hint shows `example`, a body of the route.
 */
export async function readJsonBody(
  request: Request,
  example = GENERATE_EXAMPLE,
): Promise<Record<string, unknown>> {
  const bytes = new Uint8Array(await request.arrayBuffer());
  return parseJsonObject(bytes, example);
}

/** Parses `bytes` as a UTF-8 JSON object; throws `ApiError` 400 with the reason. */
export function parseJsonObject(bytes: Uint8Array, example = GENERATE_EXAMPLE): Record<string, unknown> {
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
  try {
    checkJsonShape(bytes, BODY_SHAPE, "request body");
  } catch (err) {
    if (!(err instanceof WireError)) throw err;
    throw new ApiError(400, "INVALID_JSON", err.message, {
      hint:
        `send a JSON object nested at most ${BODY_SHAPE.maxDepth} deep with at most ${BODY_SHAPE.maxValues} values`,
      cause: err,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ApiError(400, "INVALID_JSON", `request body is not valid JSON: ${(cause as Error).message}`, {
      hint: `send a JSON object, e.g. ${example}`,
      cause,
    });
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ApiError(400, "INVALID_JSON", `request body must be a JSON object, got ${describe(value)}`, {
      hint: `send a JSON object, e.g. ${example}`,
    });
  }
  return value as Record<string, unknown>;
}

/** The 413 of a body over `maxBytes` (`what`: what was seen, e.g. "12000 bytes (Content-Length)"). */
export function bodyTooLarge(what: string, maxBytes: number): ApiError {
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
