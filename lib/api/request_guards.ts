/**
 * The hono middleware that stands before the API's routes: the route label and request metrics,
 * the bearer token (`API_SECRET`), wrong methods (405 with `Allow`) and the body size cap (413).
 * Each refusal is an `ApiError`, answered in the route's error shape by the app's error handler.
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { bodyLimit } from "hono/body-limit";
import { ApiError } from "../errors.ts";
import type { Logger } from "../util/logger.ts";
import type { Metrics } from "../util/metrics.ts";
import type { ApiEnv, Route } from "./api_env.ts";
import { errorResponse, logFailure } from "./api_errors.ts";
import { bodyTooLarge } from "./read_json_body.ts";

/** The route label of a path (trailing slashes ignored). */
export function routeOf(pathname: string): Route {
  const p = pathname.replace(/\/+$/, "") || "/";
  if (p === "/health") return "health";
  if (p === "/api/v1/generate") return "generate";
  if (p === "/v1/chat/completions") return "chat";
  if (p === "/v1/models" || p.startsWith("/v1/models/")) return "models";
  if (p === "/metrics") return "metrics";
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
    logFailure(log, e, route);
    return errorResponse(e, route);
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
