/**
 * The node's HTTP API as a plain `Request → Response` function (PLUMISE-WIRE §3): `/health`,
 * `/api/v1/generate` (+ SSE), `/v1/chat/completions` (+ streaming), `/v1/models`, `/metrics`.
 * Owns the request rules: bearer token, 503 while loading or draining, concurrency limit (429),
 * body size cap (413), validation (400), unknown model (404), request timeout (504).
 * `ApiServer` puts it on a socket; tests call `handle()` directly.
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import {
  ApiError,
  ConfigError,
  errorMessage,
  PlumiseError,
  SwarmError,
  TimeoutError,
  UnavailableError,
} from "../errors.ts";
import { timeoutSignal } from "../util/abort.ts";
import { type Logger, silentLogger } from "../util/logger.ts";
import type { Metrics } from "../util/metrics.ts";
import { parseChatRequest } from "./parse_chat_request.ts";
import { parseGenerateRequest } from "./parse_generate_request.ts";
import { DEFAULT_MAX_BODY_BYTES, readJsonBody } from "./read_json_body.ts";
import { renderChatPrompt } from "./render_chat_prompt.ts";
import { sseResponse } from "./sse_response.ts";
import { StopScanner } from "../util/stop_strings.ts";
import type { GenerationParams, Generator, NodeStatusSource } from "./types.ts";

export interface ApiHandlerOptions {
  readonly generator: Generator;
  readonly metrics: Metrics;
  readonly status?: NodeStatusSource;
  readonly logger?: Logger;
  /** Bearer token required on every route but `/health` when set. */
  readonly apiSecret?: string;
  /** Generations running at once; more get 429 (default 4). */
  readonly maxConcurrent?: number;
  /** Whole-request limit for one generation in ms (default 300 000). */
  readonly requestTimeoutMs?: number;
  /** Request body cap in bytes (default 1 MiB). */
  readonly maxBodyBytes?: number;
  /** Unix ms clock (tests). */
  readonly now?: () => number;
}

type FinishReason = "stop" | "length";
type Route = "health" | "generate" | "chat" | "models" | "metrics" | "other";

/** One taken generation slot. */
interface Slot {
  /** Aborts on timeout, shutdown or `abort()` (a streamed response calls it when the client goes away). */
  readonly signal: AbortSignal;
  /** Frees the slot (idempotent). */
  readonly release: () => void;
  readonly abort: (reason: unknown) => void;
}

interface Run {
  /** Emitted text pieces (stop strings removed). */
  readonly pieces: AsyncGenerator<string, void, void>;
  readonly state: { tokens: number; text: string; finishReason: FinishReason };
}

const JSON_HEADERS = { "content-type": "application/json; charset=utf-8" };

export class ApiHandler {
  readonly #o: Required<Omit<ApiHandlerOptions, "status" | "apiSecret">> & ApiHandlerOptions;
  readonly #log: Logger;
  readonly #secret?: Uint8Array;
  /** Aborted when the handler shuts down: every running generation stops. */
  readonly #shutdown = new AbortController();
  #draining = false;
  #inFlight = 0;
  #idleWaiters: Array<() => void> = [];

  constructor(options: ApiHandlerOptions) {
    this.#o = {
      ...options,
      logger: options.logger ?? silentLogger,
      maxConcurrent: options.maxConcurrent ?? 4,
      requestTimeoutMs: options.requestTimeoutMs ?? 300_000,
      maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      now: options.now ?? Date.now,
    };
    if (!Number.isInteger(this.#o.maxConcurrent) || this.#o.maxConcurrent < 1) {
      throw new ConfigError(
        "API_OPTIONS",
        `maxConcurrent must be an integer ≥ 1, got ${this.#o.maxConcurrent}`,
        {
          hint: "allow at least one generation at a time",
        },
      );
    }
    this.#log = this.#o.logger.child({ part: "api" });
    if (options.apiSecret) this.#secret = sha256Sync(options.apiSecret);
    this.#o.metrics.gauge("plumise_api_in_flight", "Generation requests being served", () => this.#inFlight);
  }

  /** Generations being served right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Stops accepting generations (they get 503), waits up to `graceMs` for running ones, then aborts them. */
  async drain(graceMs: number): Promise<void> {
    this.#draining = true;
    if (this.#inFlight > 0) {
      const { signal, clear } = timeoutSignal(Math.max(0, graceMs));
      try {
        await new Promise<void>((resolve) => {
          this.#idleWaiters.push(resolve);
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
      } finally {
        clear();
      }
    }
    if (this.#inFlight > 0) {
      this.#log.warn("aborting generations still running after the grace period", {
        inFlight: this.#inFlight,
      });
    }
    this.#shutdown.abort(
      new UnavailableError("SHUTTING_DOWN", "the node is shutting down", {
        hint: "retry on another node",
      }),
    );
    // Aborted generations unwind promptly; wait for them (bounded) so no stream outlives the handler.
    if (this.#inFlight > 0) {
      const { signal, clear } = timeoutSignal(2000);
      await new Promise<void>((resolve) => {
        this.#idleWaiters.push(resolve);
        signal.addEventListener("abort", () => resolve(), { once: true });
      }).finally(clear);
    }
  }

  /** Answers one request; never throws. */
  async handle(request: Request): Promise<Response> {
    const started = performance.now();
    const url = new URL(request.url);
    const route = routeOf(url.pathname);
    let response: Response;
    try {
      response = await this.#dispatch(request, url, route);
    } catch (err) {
      response = this.#errorResponse(err, route);
    }
    this.#o.metrics.inc("plumise_api_requests_total", "HTTP API requests by route and status", 1, {
      route,
      status: String(response.status),
    });
    if (route !== "metrics" && route !== "health") {
      this.#o.metrics.observe(
        "plumise_api_request_ms",
        "HTTP API time to response headers in milliseconds",
        performance.now() - started,
        { route },
      );
    }
    return response;
  }

  async #dispatch(request: Request, url: URL, route: Route): Promise<Response> {
    const method = request.method;
    const path = url.pathname.replace(/\/+$/, "") || "/";
    if (route !== "health") this.#authorize(request, route);
    if (path === "/health") {
      allow(method, ["GET", "HEAD"], path);
      return json(200, this.#health());
    }
    if (path === "/metrics") {
      allow(method, ["GET"], path);
      return new Response(this.#o.metrics.renderPrometheus(), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    }
    if (path === "/v1/models") {
      allow(method, ["GET"], path);
      return json(200, { object: "list", data: [this.#modelCard()] });
    }
    if (path.startsWith("/v1/models/")) {
      allow(method, ["GET"], path);
      const id = decodeURIComponent(path.slice("/v1/models/".length));
      this.#checkModel(id);
      return json(200, this.#modelCard());
    }
    if (path === "/api/v1/generate") {
      allow(method, ["POST"], path);
      return await this.#withSlot((slot) => this.#generate(request, slot));
    }
    if (path === "/v1/chat/completions") {
      allow(method, ["POST"], path);
      return await this.#withSlot((slot) => this.#chat(request, slot));
    }
    throw new ApiError(404, "NOT_FOUND", `no route ${method} ${path}`, {
      hint:
        "routes: GET /health, POST /api/v1/generate, POST /v1/chat/completions, GET /v1/models, GET /metrics",
    });
  }

  #authorize(request: Request, route: Route): void {
    if (!this.#secret) return;
    const header = request.headers.get("authorization") ?? "";
    const m = /^Bearer\s+(.+)$/i.exec(header.trim());
    if (!m || !timingSafeEqual(sha256Sync(m[1]), this.#secret)) {
      throw new ApiError(
        401,
        "UNAUTHORIZED",
        m ? "the bearer token is wrong" : "a bearer token is required",
        {
          hint: "send the header 'Authorization: Bearer <API_SECRET of this node>'",
          details: { route },
        },
      );
    }
  }

  #health(): Record<string, unknown> {
    const info = this.#o.generator.info();
    const st = this.#o.status?.status() ?? {};
    const snap = this.#o.metrics.snapshot();
    const out: Record<string, unknown> = {
      status: info.ready && !this.#draining ? "ok" : this.#draining ? "stopping" : "loading",
      model: info.model,
      mode: "pipeline",
    };
    if (st.address) out.address = st.address;
    if (st.peerId) out.peer_id = st.peerId;
    if (st.span) out.span = { start: st.span.start, end: st.span.end };
    if (st.state) out.state = st.state;
    out.uptime_seconds = snap.uptimeSeconds;
    out.in_flight = this.#inFlight;
    if (st.coverage) {
      out.swarm = {
        total_blocks: st.coverage.totalBlocks,
        covered_blocks: st.coverage.coveredBlocks,
        complete: st.coverage.complete,
        servers: st.coverage.servers,
      };
    }
    if (st.extra) { for (const [k, v] of Object.entries(st.extra)) if (!(k in out)) out[k] = v; }
    return out;
  }

  #modelCard(): Record<string, unknown> {
    const info = this.#o.generator.info();
    return {
      id: info.model,
      object: "model",
      created: info.createdAt ?? Math.floor(this.#o.now() / 1000),
      owned_by: "plumise",
    };
  }

  #checkModel(model: string | undefined): void {
    const served = this.#o.generator.info().model;
    if (model !== undefined && model !== served) {
      throw new ApiError(
        404,
        "MODEL_NOT_FOUND",
        `model ${JSON.stringify(model)} is not served by this node`,
        {
          hint: `use "${served}" (see GET /v1/models)`,
          details: { param: "model" },
        },
      );
    }
  }

  /**
   * Takes a generation slot (503 loading/draining, 429 when full), runs `fn`, releases exactly once.
   * A streamed response notices a client that goes away (the body is cancelled) and aborts; a plain
   * one runs to its token cap or timeout (reading `request.signal` would make Deno print a warning
   * about its legacy abort behaviour on every process).
   */
  async #withSlot(
    fn: (slot: Slot) => Promise<Response>,
  ): Promise<Response> {
    if (this.#draining) {
      throw new ApiError(503, "SHUTTING_DOWN", "the node is shutting down", {
        hint: "retry on another node",
      });
    }
    if (!this.#o.generator.info().ready) {
      throw new ApiError(503, "LOADING", "the model is still loading", {
        hint: 'retry in a few seconds; GET /health says status "ok" when ready',
      });
    }
    if (this.#inFlight >= this.#o.maxConcurrent) {
      throw new ApiError(
        429,
        "TOO_MANY_REQUESTS",
        `${this.#inFlight} generations are running, the limit is ${this.#o.maxConcurrent}`,
        {
          hint: "retry in a moment or use another node",
        },
      );
    }
    this.#inFlight++;
    const perRequest = new AbortController();
    const shutdownListener = () => perRequest.abort(this.#shutdown.signal.reason);
    this.#shutdown.signal.addEventListener("abort", shutdownListener, { once: true });
    const timer = timeoutSignal(this.#o.requestTimeoutMs, perRequest.signal);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      timer.clear();
      this.#shutdown.signal.removeEventListener("abort", shutdownListener);
      this.#inFlight--;
      if (this.#inFlight === 0) {
        const waiters = this.#idleWaiters;
        this.#idleWaiters = [];
        for (const w of waiters) w();
      }
    };
    try {
      return await fn({ signal: timer.signal, release, abort: (reason) => perRequest.abort(reason) });
    } catch (err) {
      release();
      throw err;
    }
  }

  async #generate(request: Request, slot: Slot): Promise<Response> {
    const { signal, release } = slot;
    const started = this.#o.now();
    const req = parseGenerateRequest(await readJsonBody(request, this.#o.maxBodyBytes));
    await this.#o.generator.prepare?.(signal);
    const params = this.#fitContext(req.inputs, req.params, "parameters.max_new_tokens");
    const run = this.#start(req.inputs, params, req.stop, signal);
    if (!req.stream) {
      await this.#complete(run, release);
      return json(200, {
        generated_text: run.state.text,
        num_tokens: run.state.tokens,
        latency_ms: Math.max(0, this.#o.now() - started),
      });
    }
    const first = await this.#first(run, release);
    return sseResponse(async (w) => {
      w.signal.addEventListener("abort", () => slot.abort(w.signal.reason), { once: true });
      try {
        if (first !== null) {
          w.send({ token: first });
          for await (const piece of run.pieces) w.send({ token: piece });
        }
        w.sendRaw("[DONE]");
      } catch (err) {
        const e = this.#toApiError(err);
        this.#logFailure(e, "generate");
        w.send({ error: e.message, code: e.code });
      } finally {
        this.#countTokens(run.state.tokens);
      }
    }, { onEnd: release });
  }

  async #chat(request: Request, slot: Slot): Promise<Response> {
    const { signal, release } = slot;
    const req = parseChatRequest(await readJsonBody(request, this.#o.maxBodyBytes));
    this.#checkModel(req.model);
    await this.#o.generator.prepare?.(signal);
    const info = this.#o.generator.info();
    const prompt = renderChatPrompt(req.messages, info);
    const params = this.#fitContext(prompt, req.params, "max_tokens");
    const promptTokens = this.#o.generator.countTokens(prompt);
    const id = `chatcmpl-${crypto.randomUUID().replaceAll("-", "")}`;
    const created = Math.floor(this.#o.now() / 1000);
    const usage = (n: number) => ({
      prompt_tokens: promptTokens,
      completion_tokens: n,
      total_tokens: promptTokens + n,
    });
    const run = this.#start(prompt, params, req.stop, signal);
    if (!req.stream) {
      await this.#complete(run, release);
      return json(200, {
        id,
        object: "chat.completion",
        created,
        model: info.model,
        choices: [{
          index: 0,
          message: { role: "assistant", content: run.state.text },
          logprobs: null,
          finish_reason: run.state.finishReason,
        }],
        usage: usage(run.state.tokens),
      });
    }
    const chunk = (delta: Record<string, unknown>, finish: FinishReason | null) => ({
      id,
      object: "chat.completion.chunk",
      created,
      model: info.model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    });
    const first = await this.#first(run, release);
    return sseResponse(async (w) => {
      w.signal.addEventListener("abort", () => slot.abort(w.signal.reason), { once: true });
      try {
        w.send(chunk({ role: "assistant", content: "" }, null));
        if (first !== null) {
          w.send(chunk({ content: first }, null));
          for await (const piece of run.pieces) w.send(chunk({ content: piece }, null));
        }
        w.send(chunk({}, run.state.finishReason));
        if (req.includeUsage) {
          w.send({
            id,
            object: "chat.completion.chunk",
            created,
            model: info.model,
            choices: [],
            usage: usage(run.state.tokens),
          });
        }
        w.sendRaw("[DONE]");
      } catch (err) {
        const e = this.#toApiError(err);
        this.#logFailure(e, "chat");
        w.send({ error: { message: e.message, type: errorType(e.status), code: e.code.toLowerCase() } });
      } finally {
        this.#countTokens(run.state.tokens);
      }
    }, { onEnd: release });
  }

  /**
   * Awaits the first emitted piece before the response status is committed, so that a generation
   * that fails at once (no route through the swarm, timeout) gets a proper HTTP error status.
   * Returns null when the generation ended without any text.
   */
  async #first(run: Run, release: () => void): Promise<string | null> {
    try {
      const r = await run.pieces.next();
      return r.done ? null : r.value;
    } catch (err) {
      release();
      throw err;
    }
  }

  /** Caps max new tokens to the context left after the prompt; 400 when the prompt alone does not fit. */
  #fitContext(prompt: string, params: GenerationParams, field: string): GenerationParams {
    const max = this.#o.generator.info().maxContextTokens;
    if (!max) return params;
    const n = this.#o.generator.countTokens(prompt);
    if (n >= max) {
      throw new ApiError(
        400,
        "PROMPT_TOO_LONG",
        `the prompt is ${n} tokens; the model's context is ${max} tokens`,
        {
          hint: "send a shorter prompt",
          details: { promptTokens: n, maxContextTokens: max },
        },
      );
    }
    if (n + params.maxNewTokens <= max) return params;
    this.#log.debug("max new tokens capped by the context", {
      field,
      asked: params.maxNewTokens,
      cap: max - n,
    });
    return { ...params, maxNewTokens: max - n };
  }

  /** Runs a non-streamed generation to its end (the text collects in `run.state`), frees its slot, counts its tokens. */
  async #complete(run: Run, release: () => void): Promise<void> {
    try {
      for await (const _ of run.pieces) { /* collected in state */ }
    } finally {
      release();
    }
    this.#countTokens(run.state.tokens);
  }

  #start(prompt: string, params: GenerationParams, stops: readonly string[], signal: AbortSignal): Run {
    const state = { tokens: 0, text: "", finishReason: "stop" as FinishReason };
    const generator = this.#o.generator;
    async function* pieces(): AsyncGenerator<string, void, void> {
      const scanner = new StopScanner(stops);
      const it = generator.generate(prompt, params, signal)[Symbol.asyncIterator]();
      let exhausted = false;
      try {
        while (state.tokens < params.maxNewTokens) {
          if (signal.aborted) throw signal.reason;
          const r = await it.next();
          if (r.done) {
            exhausted = true;
            break;
          }
          state.tokens++;
          const out = scanner.push(r.value.text);
          if (out) {
            state.text += out;
            yield out;
          }
          if (scanner.stopped) {
            state.finishReason = "stop";
            return;
          }
        }
        if (signal.aborted) throw signal.reason;
        state.finishReason = !exhausted && state.tokens >= params.maxNewTokens ? "length" : "stop";
        const rest = scanner.flush();
        if (rest) {
          state.text += rest;
          yield rest;
        }
      } finally {
        // Stop the generator when we end first (stop string, token cap, abort, client gone).
        if (!exhausted) await Promise.resolve(it.return?.()).catch(() => {});
      }
    }
    return { pieces: pieces(), state };
  }

  #countTokens(n: number): void {
    if (n > 0) {
      this.#o.metrics.inc("plumise_api_generated_tokens_total", "New tokens returned to HTTP API clients", n);
    }
  }

  #toApiError(err: unknown): ApiError {
    if (err instanceof ApiError) return err;
    if (err instanceof TimeoutError || (err instanceof DOMException && err.name === "TimeoutError")) {
      return new ApiError(
        504,
        "TIMEOUT",
        `the generation did not finish within ${this.#o.requestTimeoutMs} ms`,
        {
          hint: "ask for fewer tokens, or raise the node's API_TIMEOUT (--api-timeout)",
          cause: err,
        },
      );
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

  #logFailure(e: ApiError, route: string): void {
    if (e.status >= 500 && e.status !== 503) {
      this.#log.error("request failed", { route, code: e.code, error: e.message });
    } else this.#log.debug("request refused", { route, status: e.status, code: e.code, error: e.message });
  }

  #errorResponse(err: unknown, route: Route): Response {
    const e = this.#toApiError(err);
    this.#logFailure(e, route);
    const headers: Record<string, string> = {};
    if (e.status === 429 || e.status === 503) headers["retry-after"] = "1";
    if (e.status === 401) headers["www-authenticate"] = "Bearer";
    if (e.status === 405 && typeof e.details.allow === "string") headers["allow"] = e.details.allow;
    const status = e.status === 499 ? 400 : e.status;
    if (route === "chat" || route === "models") {
      return json(status, {
        error: {
          message: e.message,
          type: errorType(status),
          param: typeof e.details.param === "string" ? e.details.param : null,
          code: e.code.toLowerCase(),
          hint: e.hint || undefined,
        },
      }, headers);
    }
    return json(status, { error: e.message, code: e.code, hint: e.hint || undefined }, headers);
  }
}

function routeOf(pathname: string): Route {
  const p = pathname.replace(/\/+$/, "") || "/";
  if (p === "/health") return "health";
  if (p === "/api/v1/generate") return "generate";
  if (p === "/v1/chat/completions") return "chat";
  if (p === "/v1/models" || p.startsWith("/v1/models/")) return "models";
  if (p === "/metrics") return "metrics";
  return "other";
}

function allow(method: string, methods: string[], path: string): void {
  if (methods.includes(method)) return;
  throw new ApiError(405, "METHOD_NOT_ALLOWED", `${method} is not allowed on ${path}`, {
    hint: `use ${methods.join(" or ")}`,
    details: { allow: methods.join(", ") },
  });
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

function errorType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 429) return "rate_limit_error";
  if (status === 404) return "not_found_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

/** A fixed-size digest makes the token comparison constant-time whatever the lengths. */
function sha256Sync(text: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(text, "utf8").digest());
}
