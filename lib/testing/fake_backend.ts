/**
 * `FakeBackend`: a `BlockRuntime` with cheap, deterministic, cache-dependent math, for the unit
 * tests of other folders (swarm server/client, api, node). It enforces the same contract and the
 * same typed errors as the real runtime: span checks, cache budget (`CACHE_FULL`), unknown/closed
 * sessions, wrong shapes / hidden size / NaN (`BAD_INPUT`), `TOO_LONG`, rollback and hypoIds.
 *
 * The math of block `i` on row `b` at absolute position `p` with input `x_p` (a vector of H):
 *   s_p = Σ_h x_p[h]·w_h                                  (a scalar summary, kept in the cache)
 *   c_p = Σ_{q≤p} s_q·(1 + ((31q + i) mod 5)/10) / (p+1)  (depends on the whole cached prefix)
 *   y_p[h] = x_p[h] + 0.01·sin(0.7(i+1) + 0.13p + 0.29h) + 0.05·tanh(c_p)·cos(0.17h + i)
 * so a wrong replay, a wrong rollback or a wrong batch order changes the output. Running a
 * sequence in any split of steps gives bit-identical results to one `forward` of the whole
 * sequence (same operations in the same order).
 * @module
 */
import { RuntimeError } from "../errors.ts";
import { type AbortOptions, sleep } from "../util/abort.ts";
import {
  checkSpan,
  closedSessionError,
  validateHidden,
  validateOpen,
  validateStep,
} from "../runtime/validate_hidden.ts";
import { DirectListener } from "../wire/mod.ts";
import { noDirectError, offerDirectHere } from "../runtime/direct_steps.ts";
import type {
  BlockRuntime,
  DirectListenOptions,
  DirectOfferOptions,
  DirectServing,
  HiddenStates,
  InferenceSession,
  ModelType,
  OpenSessionOptions,
  RuntimeInfo,
  StepOptions,
  WeightFormat,
} from "../runtime/types.ts";

export interface FakeBackendOptions {
  modelId?: string;
  modelType?: ModelType;
  hiddenSize?: number;
  /** Total layers of the (pretend) model. */
  numBlocks?: number;
  /** Served span, default the whole model. */
  start?: number;
  end?: number;
  weights?: WeightFormat;
  /** Cache budget in cache tokens (batch × length × blocks), default 65536. */
  cacheTokens?: number;
  /** Longest sequence per session / forward, default 2048. */
  maxLength?: number;
  /** Pretend compute time per step/forward in ms (abortable), default 0. */
  delayMs?: number;
  /**
   * Called before each step / forward is computed; throw from it to inject a failure
   * (the error propagates to the caller; the session stays usable).
   */
  onCompute?: (event: FakeComputeEvent) => void | Promise<void>;
  /** Listen for direct paths (sessions then offer them, served on the calling thread). */
  direct?: DirectListenOptions;
}

export interface FakeComputeEvent {
  kind: "step" | "forward";
  sessionId?: string;
  start: number;
  end: number;
  /** Position before the step (after any rollback); 0 for forward. */
  position: number;
  batch: number;
  tokens: number;
}

/** Counters a test can assert on. */
export interface FakeBackendStats {
  sessionsOpened: number;
  sessionsClosed: number;
  steps: number;
  forwards: number;
  /** Token positions computed (B×T per step or forward, summed). */
  tokens: number;
}

export { validateHidden };

class FakeSession implements InferenceSession {
  readonly id = crypto.randomUUID();
  position = 0;
  closed = false;
  /** Per block (relative), per row: the scalar summaries s_q of the cached positions. */
  readonly cache: Float64Array[][];
  #chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly backend: FakeBackend,
    readonly start: number,
    readonly end: number,
    readonly maxLength: number,
    readonly batch: number,
  ) {
    this.cache = [];
    for (let i = start; i < end; i++) {
      const rows: Float64Array[] = [];
      for (let b = 0; b < batch; b++) rows.push(new Float64Array(maxLength));
      this.cache.push(rows);
    }
  }

  step(hidden: HiddenStates, options: StepOptions = {}): Promise<HiddenStates> {
    // Steps of one session run one after another, in call order.
    const run = this.#chain.then(() => this.#step(hidden, options));
    this.#chain = run.catch(() => {});
    return run;
  }

  async #step(hidden: HiddenStates, options: StepOptions): Promise<HiddenStates> {
    if (this.closed) {
      throw closedSessionError(this.id);
    }
    this.backend.assertRunning();
    validateHidden(hidden, this.backend.hiddenSize, this.batch);
    const [b, t] = hidden.shape;
    const { position, hypoIds: order } = validateStep(hidden.shape, this.position, this.maxLength, options);
    await this.backend.compute({
      kind: "step",
      sessionId: this.id,
      start: this.start,
      end: this.end,
      position,
      batch: b,
      tokens: t,
    }, { signal: options.signal });
    if (this.closed) {
      throw new RuntimeError("UNKNOWN_SESSION", `session ${this.id} was closed during the step`, {
        hint: "open a new session",
      });
    }
    // Commit: rollback, reorder, then compute (the state changes only once the step is sure to run).
    this.position = position;
    if (order) {
      for (const rows of this.cache) {
        const copies = rows.map((r) => r.slice());
        for (let r = 0; r < b; r++) rows[r] = copies[order[r]];
      }
    }
    const out = this.backend.runSpan(
      this.start,
      this.end,
      hidden,
      position,
      (rel, row) => this.cache[rel][row],
    );
    this.position = position + t;
    return out;
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.#direct?.cancel();
      this.backend.release(this);
    }
    return Promise.resolve();
  }

  #direct: DirectServing | undefined;

  /** Served on the calling thread when the backend was started with `direct`. */
  offerDirect(options: DirectOfferOptions): Promise<DirectServing> {
    const listener = this.backend.directListener;
    if (!listener) return Promise.reject(noDirectError());
    this.#direct?.cancel();
    this.#direct = offerDirectHere(listener, this, this.backend.hiddenSize, options);
    return Promise.resolve(this.#direct);
  }
}

/** A deterministic fake of the block runtime; see the module doc for its math. */
export class FakeBackend implements BlockRuntime {
  readonly modelId: string;
  readonly modelType: ModelType;
  readonly hiddenSize: number;
  readonly numBlocks: number;
  readonly start_: number;
  readonly end_: number;
  readonly weights: WeightFormat;
  readonly cacheTokensTotal: number;
  readonly maxLength: number;
  readonly stats: FakeBackendStats = {
    sessionsOpened: 0,
    sessionsClosed: 0,
    steps: 0,
    forwards: 0,
    tokens: 0,
  };
  delayMs: number;
  onCompute?: (event: FakeComputeEvent) => void | Promise<void>;
  #reserved = 0;
  #running = false;
  readonly #sessions = new Map<string, FakeSession>();
  readonly #directOptions: DirectListenOptions | undefined;
  /** @internal The direct-path listener while running with `direct`. */
  directListener: DirectListener | undefined;

  constructor(options: FakeBackendOptions = {}) {
    this.modelId = options.modelId ?? "fake/model";
    this.modelType = options.modelType ?? "llama";
    this.hiddenSize = options.hiddenSize ?? 16;
    this.numBlocks = options.numBlocks ?? 8;
    this.start_ = options.start ?? 0;
    this.end_ = options.end ?? this.numBlocks;
    this.weights = options.weights ?? "fp32";
    this.cacheTokensTotal = options.cacheTokens ?? 65536;
    this.maxLength = options.maxLength ?? 2048;
    this.delayMs = options.delayMs ?? 0;
    this.onCompute = options.onCompute;
    this.#directOptions = options.direct;
    if (!(0 <= this.start_ && this.start_ < this.end_ && this.end_ <= this.numBlocks)) {
      throw new RuntimeError(
        "BAD_SPAN",
        `span [${this.start_}, ${this.end_}) is not inside [0, ${this.numBlocks})`,
        {
          hint: "pick 0 ≤ start < end ≤ numBlocks",
        },
      );
    }
  }

  async start(): Promise<void> {
    if (this.#directOptions && !this.directListener) {
      const listener = new DirectListener(this.#directOptions);
      await listener.start();
      this.directListener = listener;
    }
    this.#running = true;
  }

  async stop(): Promise<void> {
    this.#running = false;
    for (const s of [...this.#sessions.values()]) await s.close();
    await this.directListener?.stop();
    this.directListener = undefined;
  }

  info(): RuntimeInfo {
    return {
      modelId: this.modelId,
      modelType: this.modelType,
      hiddenSize: this.hiddenSize,
      numBlocks: this.numBlocks,
      start: this.start_,
      end: this.end_,
      weights: this.weights,
      cacheTokensTotal: this.cacheTokensTotal,
      cacheTokensLeft: this.cacheTokensTotal - this.#reserved,
      maxLength: this.maxLength,
      openSessions: this.#sessions.size,
      ...(this.directListener ? { directPort: this.directListener.port } : {}),
    };
  }

  /** @internal */
  assertRunning(): void {
    if (!this.#running) {
      throw new RuntimeError("NOT_RUNNING", `runtime for ${this.modelId} is not running`, {
        hint: "call start() first (or it was stopped)",
      });
    }
  }

  #checkSpan(start: number, end: number): void {
    checkSpan(start, end, { start: this.start_, end: this.end_ });
  }

  openSession(options: OpenSessionOptions): Promise<InferenceSession> {
    try {
      this.assertRunning();
      const { start, end, maxLength, batch } = options;
      const need = validateOpen(options, {
        served: { start: this.start_, end: this.end_ },
        maxLength: this.maxLength,
        cacheLeft: this.cacheTokensTotal - this.#reserved,
      });
      this.#reserved += need;
      const s = new FakeSession(this, start, end, maxLength, batch);
      this.#sessions.set(s.id, s);
      this.stats.sessionsOpened++;
      return Promise.resolve(s);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  getSession(id: string): InferenceSession | undefined {
    return this.#sessions.get(id);
  }

  /** @internal */
  release(s: FakeSession): void {
    if (this.#sessions.delete(s.id)) {
      this.#reserved -= s.batch * s.maxLength * (s.end - s.start);
      this.stats.sessionsClosed++;
    }
  }

  async forward(
    start: number,
    end: number,
    hidden: HiddenStates,
    options: { signal?: AbortSignal } = {},
  ): Promise<HiddenStates> {
    this.assertRunning();
    this.#checkSpan(start, end);
    validateHidden(hidden, this.hiddenSize);
    const [b, t] = hidden.shape;
    if (t > this.maxLength) {
      throw new RuntimeError("TOO_LONG", `forward of ${t} tokens exceeds the limit ${this.maxLength}`, {
        hint: "split the sequence",
      });
    }
    await this.compute({ kind: "forward", start, end, position: 0, batch: b, tokens: t }, {
      signal: options.signal,
    });
    const scratch = new Map<string, Float64Array>();
    return this.runSpan(start, end, hidden, 0, (rel, row) => {
      const key = `${rel}:${row}`;
      let a = scratch.get(key);
      if (!a) scratch.set(key, a = new Float64Array(t));
      return a;
    });
  }

  /** @internal Counts, delays and calls the hook before a computation. */
  async compute(event: FakeComputeEvent, { signal }: AbortOptions = {}): Promise<void> {
    if (this.delayMs > 0) await sleep(this.delayMs, { signal });
    else if (signal?.aborted) throw signal.reason;
    await this.onCompute?.(event);
    this.assertRunning();
    if (event.kind === "step") this.stats.steps++;
    else this.stats.forwards++;
    this.stats.tokens += event.batch * event.tokens;
  }

  /** @internal The fake block math over blocks [start, end) from `position`, writing s_p into `cacheOf(rel, row)`. */
  runSpan(
    start: number,
    end: number,
    hidden: HiddenStates,
    position: number,
    cacheOf: (relBlock: number, row: number) => Float64Array,
  ): HiddenStates {
    const [b, t, h] = hidden.shape;
    let x = hidden.data;
    for (let i = start; i < end; i++) {
      const y = new Float32Array(x.length);
      for (let row = 0; row < b; row++) {
        const cache = cacheOf(i - start, row);
        for (let k = 0; k < t; k++) {
          const p = position + k;
          const base = (row * t + k) * h;
          let s = 0;
          for (let j = 0; j < h; j++) s += x[base + j] * (((j % 7) + 1) / h);
          cache[p] = s;
          let c = 0;
          for (let q = 0; q <= p; q++) c += cache[q] * (1 + ((31 * q + i) % 5) / 10);
          c /= p + 1;
          const tc = 0.05 * Math.tanh(c);
          for (let j = 0; j < h; j++) {
            y[base + j] = x[base + j] + 0.01 * Math.sin(0.7 * (i + 1) + 0.13 * p + 0.29 * j) +
              tc * Math.cos(0.17 * j + i);
          }
        }
      }
      x = y;
    }
    return { data: x, shape: [b, t, h] };
  }
}

/** Deterministic pseudo-random hidden states `[B, T, H]` in [-1, 1) from a seed (for tests). */
export function fakeHidden(batch: number, tokens: number, hidden: number, seed = 1): HiddenStates {
  const data = new Float32Array(batch * tokens * hidden);
  let s = (seed >>> 0) || 1;
  for (let k = 0; k < data.length; k++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    data[k] = s / 2 ** 31 - 1;
  }
  return { data, shape: [batch, tokens, hidden] };
}
