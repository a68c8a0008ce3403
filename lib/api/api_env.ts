/**
 * What the API's routes and guards share: the hono environment (per-request variables) and the
 * dependencies a route handler works with.
 * @module
 */
import type { Context } from "hono";
import type { Logger } from "../util/logger.ts";
import type { Metrics } from "../util/metrics.ts";
import type { GenerationSlots } from "./generation_slots.ts";
import type { Generator } from "./types.ts";

/** The route label of a request (metrics, error shape). */
export type Route =
  | "health"
  | "generate"
  | "chat"
  | "completions"
  | "models"
  | "openai"
  | "metrics"
  | "other";

/** Per-request variables set by the guards. */
export interface ApiVariables {
  /** The route label (metrics, error shape), set first. */
  route: Route;
}

export type ApiEnv = { Variables: ApiVariables };
export type ApiContext = Context<ApiEnv>;

/** What a generation route needs. */
export interface RouteDeps {
  readonly generator: Generator;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly slots: GenerationSlots;
  /** Whole-generation limit in ms (named in a 504). */
  readonly timeoutMs: number;
  /** Unix ms clock. */
  readonly now: () => number;
}

/** Counts tokens returned to API clients. */
export function countTokens(metrics: Metrics, n: number): void {
  if (n > 0) metrics.inc("plumise_api_generated_tokens_total", "New tokens returned to HTTP API clients", n);
}

/** A JSON response (`application/json; charset=utf-8`). */
export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}
