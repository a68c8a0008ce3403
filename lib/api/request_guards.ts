/**
 * The hono middleware that stands before the API's routes: the route label and request metrics,
 * browser origins (403 unless listed in `API_CORS_ORIGINS`, then CORS answers), the bearer token
 * (`API_SECRET`), wrong methods (405 with `Allow`), the JSON content type of a generation (415) and
 * the body size cap (413).
 * Each refusal is an `ApiError`, answered in the route's error shape by the app's error handler.
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { ApiError } from "../errors.ts";
import type { Logger } from "../util/logger.ts";
import type { Metrics } from "../util/metrics.ts";
import type { ApiEnv, Route } from "./api_env.ts";
import { errorResponse, publicError } from "./api_errors.ts";
import { bodyTooLarge } from "./read_json_body.ts";

/** The route label of a path (trailing slashes ignored). */
export function routeOf(pathname: string): Route {
  const p = pathname.replace(/\/+$/, "") || "/";
  if (p === "/health") return "health";
  if (p === "/api/v1/generate") return "generate";
  if (p === "/v1/chat/completions") return "chat";
  if (p === "/v1/completions") return "completions";
  if (p === "/v1/models" || p.startsWith("/v1/models/")) return "models";
  if (p === "/metrics") return "metrics";
  // any other OpenAI path (/v1/embeddings, /v1/audio/…): answered in OpenAI's error shape
  if (p === "/v1" || p.startsWith("/v1/")) return "openai";
  return "other";
}

/** Sets the route label; counts every answer by route and status, and times all but health and metrics. */
export function requestMetrics(metrics: Metrics): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const started = performance.now();
    const route = routeOf(new URL(c.req.url).pathname);
    c.set("route", route);
    await next();
    metrics.inc("plumise_api_requests_total", "HTTP API requests by route and status", 1, {
      route,
      status: String(c.res.status),
    });
    if (route !== "metrics" && route !== "health") {
      metrics.observe(
        "plumise_api_request_ms",
        "HTTP API time to response headers in milliseconds",
        performance.now() - started,
        { route },
      );
    }
  };
}

/**
 * A path with a malformed percent-encoding (`/v1/models/%E0%A4%A`) is the client's error: 400
 * BAD_PATH before routing, which would otherwise decode around it.
 */
export function wellFormedPath(): MiddlewareHandler<ApiEnv> {
  return (c, next) => {
    const raw = rawPath(c.req.url);
    try {
      decodeURIComponent(raw);
    } catch {
      throw new ApiError(
        400,
        "BAD_PATH",
        `the path ${JSON.stringify(raw.slice(0, 200))} is not valid percent-encoding`,
        {
          hint: "encode the path as UTF-8 with %XX escapes (e.g. encodeURIComponent for a model id)",
        },
      );
    }
    return next();
  };
}

/** The path of `url` as sent (no decoding). */
function rawPath(url: string): string {
  const start = url.indexOf("/", url.indexOf("://") + 3);
  if (start < 0) return "/";
  const end = url.slice(start).search(/[?#]/);
  return end < 0 ? url.slice(start) : url.slice(start, start + end);
}

/**
 * Browsers send `Origin` on cross-site requests; the gateway, curl and SDKs send none. A request
 * whose `Origin` is not in `allowed` gets 403 before anything else runs (a web page can then not
 * make a visitor's browser call the node); a listed one gets hono's CORS answers, preflight
 * included. (docs/security.md, "HTTP API")
 */
export function browserOrigins(allowed: readonly string[], log: Logger): MiddlewareHandler<ApiEnv> {
  const list = new Set(allowed);
  const corsAnswers = cors({
    origin: [...list],
    allowMethods: ["GET", "HEAD", "POST", "OPTIONS"],
    // the headers a preflight asks for (an empty list makes hono answer with them): the origin is
    // already one the operator listed, and SDKs send their own (openai's x-stainless-*, openai-beta)
    allowHeaders: [],
    exposeHeaders: ["retry-after"],
    maxAge: 600,
  });
  return (c, next) => {
    const origin = c.req.header("origin");
    if (origin === undefined) return next();
    if (!list.has(origin)) {
      const route = c.get("route");
      const e = new ApiError(
        403,
        "ORIGIN_NOT_ALLOWED",
        `requests from origin ${JSON.stringify(origin)} are not allowed`,
        {
          hint: "a web page may call this API only from an origin listed in the node's API_CORS_ORIGINS",
          details: { origin },
        },
      );
      return Promise.resolve(errorResponse(publicError(e, log, route), route));
    }
    return corsAnswers(c, next);
  };
}

/**
 * A generation's body must be declared `application/json` (415 otherwise): browsers send
 * `text/plain`, form types or no type at all without a CORS preflight, JSON only after one.
 */
export function requireJson(): MiddlewareHandler<ApiEnv> {
  return (c, next) => {
    const type = c.req.header("content-type") ?? "";
    const media = type.split(";")[0].trim().toLowerCase();
    if (media !== "application/json") {
      throw new ApiError(
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        `the request body must be JSON, declared ${type ? JSON.stringify(type) : "without a content type"}`,
        { hint: "send the header 'Content-Type: application/json'" },
      );
    }
    return next();
  };
}

/**
 * hono's `bearerAuth` with this API's answers: 401 with `WWW-Authenticate: Bearer` and a hint, in the
 * route's error shape. Tokens are compared through SHA-256 digests, in constant time whatever their
 * lengths. `/health` stays open (the gateway polls it without a token).
 */
export function bearerToken(secret: string, log: Logger): MiddlewareHandler<ApiEnv> {
  const want = sha256(secret);
  const refuse = (message: string) => (c: Context<ApiEnv>) => {
    const route = c.get("route");
    const e = new ApiError(401, "UNAUTHORIZED", message, {
      hint: "send the header 'Authorization: Bearer <API_SECRET of this node>'",
      details: { route },
    });
    return errorResponse(publicError(e, log, route), route);
  };
  const auth = bearerAuth<ApiEnv>({
    verifyToken: (token) => timingSafeEqual(sha256(token), want),
    noAuthenticationHeader: { message: refuse("a bearer token is required") },
    invalidAuthenticationHeader: { message: refuse("a bearer token is required") },
    invalidToken: { message: refuse("the bearer token is wrong") },
  });
  return (c, next) => c.get("route") === "health" ? next() : auth(c, next);
}

/** A handler for the methods a path does not serve: 405 with `Allow`. */
export function methodNotAllowed(allowed: readonly string[]): MiddlewareHandler<ApiEnv> {
  return (c) => {
    throw new ApiError(405, "METHOD_NOT_ALLOWED", `${c.req.method} is not allowed on ${c.req.path}`, {
      hint: `use ${allowed.join(" or ")}`,
      details: { allow: allowed.join(", ") },
    });
  };
}

/**
 * The whole body must arrive within `ms` of the request (408 BODY_TIMEOUT otherwise, and the rest
 * of it is cancelled): a client that trickles its body can hold a connection, never a generation
 * slot, which is taken only once the body is read and valid.
 */
export function bodyDeadline(ms: number): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const raw = c.req.raw.body;
    if (!raw) return await next();
    const reader = raw.getReader();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let late: ApiError | undefined;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        timer = setTimeout(() => {
          late = new ApiError(408, "BODY_TIMEOUT", `the request body did not arrive within ${ms} ms`, {
            hint: "send the whole body at once, right after the headers",
          });
          controller.error(late);
          reader.cancel(late).catch(() => {});
        }, ms);
      },
      async pull(controller) {
        const r = await reader.read().catch((err) => {
          throw late ?? err;
        });
        if (late) return;
        if (r.done) {
          clearTimeout(timer);
          controller.close();
        } else controller.enqueue(r.value);
      },
      cancel(reason) {
        clearTimeout(timer);
        return reader.cancel(reason);
      },
    }, { highWaterMark: 0 }); // read only what the reader asks for
    c.req.raw = new Request(c.req.raw, { body, duplex: "half" } as RequestInit);
    try {
      await next();
    } finally {
      clearTimeout(timer);
    }
  };
}

/** hono's `bodyLimit`: a declared Content-Length over `maxBytes` is refused unread, a longer stream at the cap. */
export function bodyCap(maxBytes: number): MiddlewareHandler<ApiEnv> {
  return bodyLimit({
    maxSize: maxBytes,
    onError: (c) => {
      const declared = c.req.header("content-length");
      throw bodyTooLarge(
        declared ? `${declared} bytes (Content-Length)` : `more than ${maxBytes} bytes`,
        maxBytes,
      );
    },
  });
}

/** A fixed-size digest makes the token comparison constant-time whatever the lengths. */
function sha256(text: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(text, "utf8").digest());
}
