/**
 * How failures become HTTP answers: any thrown value is mapped to an `ApiError` (`ConfigError` →
 * 400, `SwarmError`/`UnavailableError` → 503, a timeout → 504, a client gone → 499 answered as
 * 400, anything else → 500), logged by severity (a 500 answers only an error id, never its internal
 * message; the log has it), and written in the route's error shape: OpenAI's
 * `{error: {message, type, param, code}}` on `/v1/*`, `{error, code, hint}` elsewhere.
 * @module
 */
import {
  ApiError,
  causeChain,
  ConfigError,
  errorMessage,
  PlumiseError,
  SwarmError,
  TimeoutError,
  UnavailableError,
} from "../errors.ts";
import type { Logger } from "../util/logger.ts";
import { jsonResponse, type Route } from "./api_env.ts";

/** Routes that answer errors in OpenAI's shape. */
export function openAiShaped(route: Route): boolean {
  return route === "chat" || route === "completions" || route === "models" || route === "openai";
}

/** Maps any thrown value to the `ApiError` to answer with; `timeoutMs` names the request limit in a 504. */
export function toApiError(err: unknown, timeoutMs: number): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof TimeoutError || (err instanceof DOMException && err.name === "TimeoutError")) {
    return new ApiError(504, "TIMEOUT", `the generation did not finish within ${timeoutMs} ms`, {
      hint: "ask for fewer tokens, or raise the node's API_TIMEOUT (--api-timeout)",
      cause: err,
    });
  }
  if (err instanceof ConfigError) {
    return new ApiError(400, err.code, err.message, { hint: err.hint, cause: err });
  }
  if (err instanceof SwarmError || err instanceof UnavailableError) {
    return new ApiError(503, err.code, err.message, { hint: err.hint || "retry in a moment", cause: err });
  }
  if (err instanceof DOMException && err.name === "AbortError") {
    return new ApiError(499, "CLIENT_CLOSED", "the client closed the request", { cause: err });
  }
  if (err instanceof PlumiseError) {
    return new ApiError(500, err.code, err.message, { hint: err.hint, cause: err });
  }
  return new ApiError(500, "INTERNAL", `internal error: ${errorMessage(err)}`, {
    hint: "see the node's log; report it if it repeats",
    cause: err,
  });
}

/**
 * The error a client may see, logged: a server fault (500) loses its message and hint, which go to
 * the log under a fresh error id that the answer carries (`error_id`); other answers keep theirs
 * (they are our own sentences about the request) and are logged at debug level.
 */
export function publicError(e: ApiError, log: Logger, route: string): ApiError {
  if (e.status < 500 || e.status === 503 || e.status === 504) {
    log.debug("request refused", { route, status: e.status, code: e.code, error: e.message });
    return e;
  }
  const errorId = newErrorId();
  log.error("request failed", {
    route,
    status: e.status,
    code: e.code,
    errorId,
    error: e.message,
    causes: causeChain(e.cause).slice(0, 5),
  });
  return new ApiError(e.status, e.code, `internal error ${errorId}: the node's log has the details`, {
    hint: `report error id ${errorId} to the node's operator if it repeats`,
    details: { errorId },
  });
}

/** Maps, logs and hides as the client should see it: `publicError(toApiError(err))`. */
export function failure(err: unknown, timeoutMs: number, log: Logger, route: string): ApiError {
  return publicError(toApiError(err, timeoutMs), log, route);
}

/** 12 hex digits, unique enough to find one line in a node's log. */
function newErrorId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 12);
}

/**
 * OpenAI's error `code` for ours: lower case, and a prompt past the context is OpenAI's own
 * `context_length_exceeded`, which client libraries (LangChain, LiteLLM) look for to trim a
 * conversation.
 */
function openAiCode(code: string): string {
  return code === "PROMPT_TOO_LONG" ? "context_length_exceeded" : code.toLowerCase();
}

/** OpenAI's error `type` for an HTTP status. */
export function errorType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 429) return "rate_limit_error";
  if (status === 404) return "not_found_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

/** The error event a stream ends with when it fails after its first event. */
export function streamErrorEvent(e: ApiError, route: Route): Record<string, unknown> {
  const errorId = errorIdOf(e);
  if (openAiShaped(route)) {
    return {
      error: { message: e.message, type: errorType(e.status), code: openAiCode(e.code), error_id: errorId },
    };
  }
  return { error: e.message, code: e.code, error_id: errorId };
}

function errorIdOf(e: ApiError): string | undefined {
  return typeof e.details.errorId === "string" ? e.details.errorId : undefined;
}

/** The HTTP response for `e` on `route`, with Retry-After / WWW-Authenticate / Allow where they apply. */
export function errorResponse(e: ApiError, route: Route): Response {
  const headers: Record<string, string> = {};
  if (e.status === 429 || e.status === 503) headers["retry-after"] = "1";
  if (e.status === 401) headers["www-authenticate"] = "Bearer";
  if (e.status === 405 && typeof e.details.allow === "string") headers["allow"] = e.details.allow;
  // OpenAI's SDKs retry a 5xx twice unless told not to: a generation that ran out of time would
  // run out again, three times over
  if (e.status === 504) headers["x-should-retry"] = "false";
  const status = e.status === 499 ? 400 : e.status;
  const body = openAiShaped(route)
    ? {
      error: {
        message: e.message,
        type: errorType(status),
        param: typeof e.details.param === "string" ? e.details.param : null,
        code: openAiCode(e.code),
        hint: e.hint || undefined,
        error_id: errorIdOf(e),
      },
    }
    : { error: e.message, code: e.code, hint: e.hint || undefined, error_id: errorIdOf(e) };
  return jsonResponse(status, body, headers);
}
