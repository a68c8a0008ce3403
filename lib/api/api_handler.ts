/**
 * The node's HTTP API (docs/protocol.md, "Gateway HTTP API") as a hono app: `/health`,
 * `/api/v1/generate` (+ SSE), `/v1/chat/completions` (+ streaming), `/v1/models`, `/metrics`. This
 * file composes it: the
 * guards (lib/api/request_guards.ts), the routes (generate_route.ts, chat_route.ts, info_routes.ts),
 * the generation slots (generation_slots.ts) and the error answers (api_errors.ts).
 * `ApiServer` puts it on a socket; tests call `app.request()` in-process.
 * @module
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { getPath } from "hono/utils/url";
import { ApiError } from "../errors.ts";
import { type Logger, silentLogger } from "../util/logger.ts";
import type { Metrics } from "../util/metrics.ts";
import type { ApiEnv, RouteDeps } from "./api_env.ts";
import { errorResponse, failure, publicError } from "./api_errors.ts";
import { chatRoute } from "./chat_route.ts";
import { completionsRoute } from "./completions_route.ts";
import { generateRoute } from "./generate_route.ts";
import { GenerationSlots } from "./generation_slots.ts";
import { healthRoute, metricsRoute, modelRoute, modelsRoute } from "./info_routes.ts";
import { DEFAULT_MAX_BODY_BYTES } from "./read_json_body.ts";
import {
  bearerToken,
  bodyCap,
  bodyDeadline,
  browserOrigins,
  methodNotAllowed,
  requestMetrics,
  requireJson,
  wellFormedPath,
} from "./request_guards.ts";
import type { Generator, NodeStatusSource } from "./types.ts";

export interface ApiHandlerOptions {
  readonly generator: Generator;
  readonly metrics: Metrics;
  readonly status?: NodeStatusSource;
  readonly logger?: Logger;
  /** Web origins (`https://app.example`) a browser may call from; any other `Origin` gets 403 (default none). */
  readonly corsOrigins?: readonly string[];
  /** Bearer token required on every route but `/health` when set. */
  readonly apiSecret?: string;
  /** Generations running at once; more get 429 (default 4). */
  readonly maxConcurrent?: number;
  /** Whole-request limit for one generation in ms (default 300 000). */
  readonly requestTimeoutMs?: number;
  /** Request body cap in bytes (default 1 MiB). */
  readonly maxBodyBytes?: number;
  /** The whole request body must arrive within this many ms (default 10 000), else 408. */
  readonly bodyTimeoutMs?: number;
  /** Unix ms clock (tests). */
  readonly now?: () => number;
}

/** Time a client has to send a request body (ms). */
export const DEFAULT_BODY_TIMEOUT_MS = 10_000;

const GET = ["GET", "HEAD"] as const;
const POST = ["POST"] as const;

export class ApiHandler {
  /** The hono app (`app.request(path, init)` in tests, `app.fetch` on a server). */
  readonly app: Hono<ApiEnv>;
  readonly #slots: GenerationSlots;

  constructor(options: ApiHandlerOptions) {
    const log = (options.logger ?? silentLogger).child({ part: "api" });
    const timeoutMs = options.requestTimeoutMs ?? 300_000;
    const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    const bodyTimeoutMs = options.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS;
    const slots = new GenerationSlots({
      limit: options.maxConcurrent ?? 4,
      timeoutMs,
      ready: () => options.generator.info().ready,
      log,
    });
    this.#slots = slots;
    const deps: RouteDeps = {
      generator: options.generator,
      metrics: options.metrics,
      log,
      slots,
      timeoutMs,
      now: options.now ?? Date.now,
    };
    options.metrics.gauge("plumise_api_in_flight", "Generation requests being served", () => slots.inFlight);

    // Trailing slashes do not matter (`/health/` is `/health`).
    const app = new Hono<ApiEnv>({ getPath: (request) => getPath(request).replace(/\/+$/, "") || "/" });
    app.use(requestMetrics(options.metrics));
    app.use(wellFormedPath());
    app.use(browserOrigins(options.corsOrigins ?? [], log));
    if (options.apiSecret) app.use(bearerToken(options.apiSecret, log));

    app.get("/health", healthRoute(deps, options.status));
    app.all("/health", methodNotAllowed(GET));
    app.get("/metrics", metricsRoute(deps));
    app.all("/metrics", methodNotAllowed(GET));
    app.get("/v1/models", modelsRoute(deps));
    app.all("/v1/models", methodNotAllowed(GET));
    app.get("/v1/models/:id{.+}", modelRoute(deps));
    app.all("/v1/models/:id{.+}", methodNotAllowed(GET));
    // A generation's body: JSON only, read under a deadline and a size cap, before any slot is taken.
    const body = [requireJson(), bodyDeadline(bodyTimeoutMs), bodyCap(maxBodyBytes)] as const;
    app.post("/api/v1/generate", ...body, generateRoute(deps));
    app.all("/api/v1/generate", methodNotAllowed(POST));
    app.post("/v1/chat/completions", ...body, chatRoute(deps));
    app.all("/v1/chat/completions", methodNotAllowed(POST));
    app.post("/v1/completions", ...body, completionsRoute(deps));
    app.all("/v1/completions", methodNotAllowed(POST));

    app.notFound((c) => {
      const e = new ApiError(404, "NOT_FOUND", `no route ${c.req.method} ${c.req.path}`, {
        hint:
          "routes: GET /health, POST /api/v1/generate, POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /metrics",
      });
      return errorResponse(publicError(e, log, c.get("route")), c.get("route"));
    });
    app.onError((err, c) => {
      if (err instanceof HTTPException) return err.getResponse();
      return errorResponse(failure(err, timeoutMs, log, c.get("route")), c.get("route"));
    });
    this.app = app;
  }

  /** Generations being served right now. */
  get inFlight(): number {
    return this.#slots.inFlight;
  }

  /** True once `drain()` was called. */
  get draining(): boolean {
    return this.#slots.draining;
  }

  /** Stops accepting generations (they get 503), waits up to `graceMs` for running ones, then aborts them. */
  drain(graceMs: number): Promise<void> {
    return this.#slots.drain(graceMs);
  }

  /** Answers one request; never throws. */
  async handle(request: Request): Promise<Response> {
    return await this.app.fetch(request);
  }
}
