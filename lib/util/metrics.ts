/**
 * Process-wide metrics: the contribution counters that the swarm server feeds and the
 * Oracle reporter reads (as immutable snapshots), plus generic counters, gauges and
 * histograms rendered as Prometheus text by the HTTP API.
 * @module
 */

/** Cumulative contribution since the node started; what the Oracle report is built from. */
export interface ContributionSnapshot {
  /** Token positions computed by this node's span, for any client (once per span per step). */
  readonly tokensProcessed: number;
  /** Sessions opened + forward requests served. */
  readonly requestCount: number;
  /** Number of timed request steps. */
  readonly latencySamples: number;
  /** Sum of server-side milliseconds over those steps. */
  readonly totalLatencyMs: number;
  /** Mean server-side latency per step, 2 decimals (0 without samples). */
  readonly avgLatencyMs: number;
  /** Whole seconds since `startedAt`. */
  readonly uptimeSeconds: number;
  /** Unix ms when the counters started. */
  readonly startedAt: number;
  /** Unix ms of this snapshot. */
  readonly takenAt: number;
}

type Labels = Record<string, string>;
const labelKey = (labels: Labels = {}): string =>
  Object.keys(labels).sort().map((k) => `${k}="${labels[k].replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`)
    .join(",");

interface Family {
  type: "counter" | "gauge" | "histogram";
  help: string;
  values: Map<string, number>;
  buckets?: number[];
  hist?: Map<string, { counts: number[]; sum: number; count: number }>;
}

export const DEFAULT_LATENCY_BUCKETS_MS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/** Buckets of `plumise_batch_sessions`: sessions in one batch of decode steps. */
export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64];

/** Buckets of `plumise_batch_queue_wait_ms`: a step's wait in the runtime's queue. */
export const QUEUE_WAIT_BUCKETS_MS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000];

/** A registry of counters/gauges/histograms plus the contribution counters. */
export class Metrics {
  readonly #now: () => number;
  readonly startedAt: number;
  #tokens = 0;
  #requests = 0;
  #latencyMs = 0;
  #latencySamples = 0;
  readonly #families = new Map<string, Family>();
  readonly #gaugeFns = new Map<string, { help: string; fn: () => number | Array<[Labels, number]> }>();

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
    this.startedAt = this.#now();
  }

  /** Records `tokens` token positions computed for one step of one session (or one forward request). */
  addTokens(tokens: number): void {
    if (!Number.isFinite(tokens) || tokens < 0) {
      throw new RangeError(`tokens must be a finite number ≥ 0, got ${tokens}`);
    }
    this.#tokens += Math.floor(tokens);
    this.inc(
      "plumise_tokens_processed_total",
      "Token positions computed by this node's span",
      Math.floor(tokens),
    );
  }

  /** Records one request (a session opened or a forward request served). */
  addRequest(kind = "inference"): void {
    this.#requests++;
    this.inc("plumise_requests_total", "Sessions opened and forward requests served", 1, { kind });
  }

  /** Records the server-side time of one step. */
  observeLatency(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.#latencyMs += ms;
    this.#latencySamples++;
    this.observe("plumise_step_latency_ms", "Server-side time per step in milliseconds", ms);
  }

  /**
   * Records the runtime's batches of steps (continuous batching, docs/architecture.md): sessions
   * per batch and each step's wait in the queue.
   */
  observeBatches(
    sizes: readonly number[],
    waitsMs: readonly number[],
    windows?: { readonly filled: number; readonly inVain: number; readonly ms: number },
  ): void {
    if (windows) {
      const help = "Waits of the runtime for the sessions of its last batches, by outcome";
      if (windows.filled > 0) {
        this.inc("plumise_batch_windows_total", help, windows.filled, { outcome: "filled" });
      }
      if (windows.inVain > 0) {
        this.inc("plumise_batch_windows_total", help, windows.inVain, { outcome: "in_vain" });
      }
      if (windows.ms > 0) {
        this.inc(
          "plumise_batch_window_ms_total",
          "Milliseconds the runtime waited for the sessions of its last batches",
          windows.ms,
        );
      }
    }
    for (const n of sizes) {
      this.observe(
        "plumise_batch_sessions",
        "Sessions per batch of steps run together",
        n,
        undefined,
        BATCH_SIZE_BUCKETS,
      );
    }
    for (const w of waitsMs) {
      this.observe(
        "plumise_batch_queue_wait_ms",
        "Time a step waited in the runtime's queue before its batch ran, in milliseconds",
        w,
        undefined,
        QUEUE_WAIT_BUCKETS_MS,
      );
    }
  }

  /** An immutable snapshot of the cumulative contribution counters. */
  snapshot(): ContributionSnapshot {
    const takenAt = this.#now();
    return Object.freeze({
      tokensProcessed: this.#tokens,
      requestCount: this.#requests,
      latencySamples: this.#latencySamples,
      totalLatencyMs: this.#latencyMs,
      avgLatencyMs: this.#latencySamples === 0
        ? 0
        : Math.round((this.#latencyMs / this.#latencySamples) * 100) / 100,
      uptimeSeconds: Math.max(0, Math.floor((takenAt - this.startedAt) / 1000)),
      startedAt: this.startedAt,
      takenAt,
    });
  }

  #family(name: string, type: Family["type"], help: string, buckets?: number[]): Family {
    let f = this.#families.get(name);
    if (!f) {
      f = { type, help, values: new Map() };
      if (type === "histogram") {
        f.buckets = buckets ?? DEFAULT_LATENCY_BUCKETS_MS;
        f.hist = new Map();
      }
      this.#families.set(name, f);
    } else if (f.type !== type) {
      throw new TypeError(`metric ${name} is a ${f.type}, not a ${type}`);
    }
    return f;
  }

  /** Increments a counter. */
  inc(name: string, help: string, by = 1, labels?: Labels): void {
    const f = this.#family(name, "counter", help);
    const k = labelKey(labels);
    f.values.set(k, (f.values.get(k) ?? 0) + by);
  }

  /** Sets a gauge. */
  set(name: string, help: string, value: number, labels?: Labels): void {
    this.#family(name, "gauge", help).values.set(labelKey(labels), value);
  }

  /** Registers a gauge computed on every render (e.g. cache bytes free). */
  gauge(name: string, help: string, fn: () => number | Array<[Labels, number]>): void {
    this.#gaugeFns.set(name, { help, fn });
  }

  /** Adds an observation to a histogram (`buckets`: its upper bounds when it is new; default latency ms). */
  observe(name: string, help: string, value: number, labels?: Labels, buckets?: number[]): void {
    const f = this.#family(name, "histogram", help, buckets);
    const k = labelKey(labels);
    let h = f.hist!.get(k);
    if (!h) {
      h = { counts: new Array(f.buckets!.length).fill(0), sum: 0, count: 0 };
      f.hist!.set(k, h);
    }
    for (let i = 0; i < f.buckets!.length; i++) if (value <= f.buckets![i]) h.counts[i]++;
    h.sum += value;
    h.count++;
  }

  /** A counter's or gauge's current value (0 when absent). */
  value(name: string, labels?: Labels): number {
    return this.#families.get(name)?.values.get(labelKey(labels)) ?? 0;
  }

  /** Prometheus text exposition format 0.0.4. */
  renderPrometheus(): string {
    const lines: string[] = [];
    const snap = this.snapshot();
    lines.push(
      "# HELP plumise_uptime_seconds Seconds since the node started",
      "# TYPE plumise_uptime_seconds gauge",
    );
    lines.push(`plumise_uptime_seconds ${snap.uptimeSeconds}`);
    const sel = (name: string, k: string, extra = "") => {
      const inner = [k, extra].filter(Boolean).join(",");
      return inner ? `${name}{${inner}}` : name;
    };
    for (const [name, f] of this.#families) {
      lines.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`);
      if (f.type === "histogram") {
        for (const [k, h] of f.hist!) {
          f.buckets!.forEach((b, i) => lines.push(`${sel(name + "_bucket", k, `le="${b}"`)} ${h.counts[i]}`));
          lines.push(`${sel(name + "_bucket", k, 'le="+Inf"')} ${h.count}`);
          lines.push(`${sel(name + "_sum", k)} ${h.sum}`, `${sel(name + "_count", k)} ${h.count}`);
        }
      } else {
        for (const [k, v] of f.values) lines.push(`${sel(name, k)} ${v}`);
      }
    }
    for (const [name, g] of this.#gaugeFns) {
      let v: number | Array<[Labels, number]>;
      try {
        v = g.fn();
      } catch {
        continue;
      }
      lines.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`);
      if (typeof v === "number") lines.push(`${name} ${v}`);
      else for (const [labels, x] of v) lines.push(`${sel(name, labelKey(labels))} ${x}`);
    }
    return lines.join("\n") + "\n";
  }
}
