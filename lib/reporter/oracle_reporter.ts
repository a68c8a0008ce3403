/**
 * The Oracle report loop: every `intervalMs` (first after one interval) take a snapshot of the
 * cumulative counters, build and sign the exact report, POST it with a 30 s timeout. Nothing is
 * ever reset, so a failed report loses nothing; past the Oracle's 1e9 tokens the values reported
 * are chosen from what it last accepted, and while an answer is lost from what it may hold
 * (`reportCountersAmong`; each report written down before it is sent: report_state.ts); 400/401 log the Oracle's message and wait for the
 * next interval; a clock skew > 30 s (from the reply's `Date` header) is warned about once; a final
 * report is sent on stop.
 * @module
 */
import type { Signer } from "../chain/types.ts";
import { errorMessage, ReporterError } from "../errors.ts";
import { type AbortOptions, sleep } from "../util/abort.ts";
import { type Logger, silentLogger } from "../util/logger.ts";
import type { ContributionSnapshot } from "../util/metrics.ts";
import { oracleEndpoint, type OracleReply, oracleRequest, replyMessage } from "./_oracle_http.ts";
import { buildReport, cleanProof, type ReportBody, type ReportProof } from "./report_body.ts";
import { type Counters, NO_REPORT, type OracleView, reportCountersAmong } from "./report_counters.ts";
import { loadReportState, MAX_UNSURE, saveReportState } from "./report_state.ts";

export const DEFAULT_REPORT_TIMEOUT_MS = 30_000;
export const SKEW_WARN_SECONDS = 30;
const MAX_PROOFS = 64;
/** How soon a report lost to the network or an Oracle error is tried again (at most an interval). */
export const FAILED_RETRY_MS = 15_000;

/** The Oracle counts a node active only with a report within this long (5 minutes). */
export const ORACLE_ACTIVE_WINDOW_MS = 300_000;

/**
 * The report period for `REPORT_INTERVAL` (ms): that interval, but short enough that a report lost
 * and tried again (`FAILED_RETRY_MS`) still lands inside the Oracle's active window with 15 s to
 * spare, i.e. at most 270 s: at 300 s every report came at the window's very end.
 */
export function reportPeriodMs(intervalMs: number): number {
  return Math.min(intervalMs, ORACLE_ACTIVE_WINDOW_MS - FAILED_RETRY_MS - 15_000);
}

/**
 * When the report loop reports next, after a report that ended at `now` (ms): the first slot of
 * the fixed period after it (`slot` + k × `intervalMs`), or sooner after a `lost` report.
 */
export function nextReport(
  slot: number,
  now: number,
  intervalMs: number,
  lost: boolean,
): { slot: number; at: number } {
  let next = slot;
  if (next <= now) next += Math.ceil((now - next) / intervalMs + Number.EPSILON) * intervalMs;
  if (next <= now) next += intervalMs;
  return { slot: next, at: lost ? Math.min(next, now + FAILED_RETRY_MS) : next };
}

/** The cumulative counters a report is made of, from a snapshot of the metrics. */
function countersOf(s: ContributionSnapshot): Counters {
  return { tokens: Math.floor(s.tokensProcessed), requests: Math.floor(s.requestCount) };
}

export interface OracleReporterOptions {
  oracleUrl: string;
  signer: Signer;
  /** The counters (lib/util Metrics); only snapshots are read. */
  metrics: { snapshot(): ContributionSnapshot };
  /** Milliseconds between reports (REPORT_INTERVAL × 1000). */
  intervalMs: number;
  logger?: Logger;
  /** POST timeout (default 30 s). */
  timeoutMs?: number;
  /** Timeout of the final report on stop (default 5 s). */
  finalTimeoutMs?: number;
  /** Clock in unix ms (tests). */
  now?: () => number;
  fetch?: typeof fetch;
  /**
   * The directory where the Oracle's last accepted values and what it has not counted are kept
   * across restarts (report_state.ts); none: a restart loses what the last report did not carry.
   */
  stateDir?: string;
}

export type ReportOutcome =
  | { readonly ok: true; readonly body: ReportBody; readonly shouldReset: boolean }
  | { readonly ok: false; readonly body?: ReportBody; readonly status?: number; readonly error: string };

export interface ReporterStatus {
  readonly sent: number;
  readonly accepted: number;
  readonly failed: number;
  readonly lastError?: string;
  readonly lastAccepted?: { readonly timestamp: number; readonly tokensProcessed: number };
  /** Last measured server − local clock difference in seconds. */
  readonly skewSeconds?: number;
}

export class OracleReporter {
  readonly #o: OracleReporterOptions;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #controller = new AbortController();
  #loop: Promise<void> | undefined;
  /**
   * The timestamp of the last report the Oracle accepted or may have (its answer lost): the next
   * must be later. A refused one does not count, so a clock put right is believed at once.
   */
  #lastTimestamp = 0;
  /** The timestamp of the last report the Oracle accepted. */
  #acceptedTimestamp = 0;
  #lastRefusal = "";
  #skewWarned = false;
  #proofs: ReportProof[] = [];
  /** What the Oracle holds after the last report sent, if it took it (report_counters.ts). */
  #tip: OracleView = NO_REPORT;
  /** Views it may hold instead: reports before the tip whose answers were lost. */
  #unsure: readonly OracleView[] = [];
  /** The saved view read back (once, before the first report). */
  #restored: Promise<void> | undefined;
  #inFlight: Promise<ReportOutcome> | undefined;
  #stopped = false;
  #status: { -readonly [K in keyof ReporterStatus]: ReporterStatus[K] } = { sent: 0, accepted: 0, failed: 0 };

  constructor(options: OracleReporterOptions) {
    if (!(options.intervalMs > 0)) {
      throw new ReporterError(
        "REPORT_INTERVAL_INVALID",
        `report interval ${options.intervalMs} ms is not > 0`,
        {
          hint: "REPORT_INTERVAL is seconds, 10..300",
        },
      );
    }
    try {
      new URL(options.oracleUrl);
    } catch {
      throw new ReporterError(
        "ORACLE_URL_INVALID",
        `ORACLE_API_URL ${JSON.stringify(options.oracleUrl)} is not a URL`,
        {
          hint: "e.g. http://localhost:15481",
        },
      );
    }
    this.#o = options;
    this.#logger = (options.logger ?? silentLogger).child({ part: "reporter" });
    this.#now = options.now ?? Date.now;
  }

  status(): ReporterStatus {
    return { ...this.#status };
  }

  /** Queues a proof for the next report (only the four allowed keys are kept). */
  addProof(proof: ReportProof): void {
    this.#proofs.push(cleanProof(proof));
    if (this.#proofs.length > MAX_PROOFS) this.#proofs.splice(0, this.#proofs.length - MAX_PROOFS);
  }

  start(): void {
    if (this.#loop || this.#stopped) return;
    this.#loop = this.#run({ signal: this.#controller.signal });
  }

  /**
   * Reports on a fixed period (a slow reply does not push the next report later; slots missed
   * while one ran are skipped), and after a report lost to the network or an Oracle error (5xx)
   * tries again within `FAILED_RETRY_MS` rather than a whole interval later: the Oracle counts a
   * node active only with a report in the last 5 minutes. A refusal (4xx) waits for its slot.
   */
  async #run({ signal }: { signal: AbortSignal }): Promise<void> {
    const interval = reportPeriodMs(this.#o.intervalMs);
    let slot = performance.now() + interval;
    let at = slot;
    while (!signal.aborted) {
      try {
        await sleep(Math.max(0, at - performance.now()), { signal });
      } catch {
        return;
      }
      const r = await this.reportNow({ signal });
      ({ slot, at } = nextReport(
        slot,
        performance.now(),
        interval,
        !r.ok && (r.status === undefined || r.status >= 500),
      ));
    }
  }

  /** Sends one report now (never two with the same timestamp; never two at once). */
  reportNow(
    { signal, timeoutMs = this.#o.timeoutMs ?? DEFAULT_REPORT_TIMEOUT_MS }: AbortOptions & {
      timeoutMs?: number;
    } = {},
  ): Promise<ReportOutcome> {
    const run = (this.#inFlight ?? Promise.resolve()).then(async () => {
      const outcome = await this.#send({ signal, timeoutMs });
      // What the Oracle did not take is written down now, not only at a clean stop: a process
      // killed while the Oracle is down loses at most what it counted since this report.
      if (!outcome.ok && this.#restored) {
        await this.#restored;
        await this.#save();
      }
      return outcome;
    });
    this.#inFlight = run.catch(() => ({ ok: false, error: "" }) as ReportOutcome);
    return run;
  }

  async #send({ signal, timeoutMs }: AbortOptions & { timeoutMs: number }): Promise<ReportOutcome> {
    // Never two reports in the same second: wait for the next second rather than run ahead of the clock.
    let timestamp = Math.floor(this.#now() / 1000);
    if (timestamp <= this.#lastTimestamp) {
      const waitMs = (this.#lastTimestamp + 1) * 1000 - this.#now();
      if (waitMs > 0 && waitMs <= 1500) {
        try {
          await sleep(waitMs, { signal });
        } catch {
          return { ok: false, error: "report cancelled" };
        }
      }
      timestamp = Math.max(Math.floor(this.#now() / 1000), this.#lastTimestamp + 1);
    }
    await this.#restore();
    const proofs = this.#proofs.slice();
    let body: ReportBody;
    let counters: ReturnType<typeof reportCountersAmong>;
    try {
      const snapshot = this.#o.metrics.snapshot();
      counters = reportCountersAmong(countersOf(snapshot), this.#tip, this.#unsure, {
        ahead: this.#unsure.length < MAX_UNSURE,
      });
      body = await buildReport({
        signer: this.#o.signer,
        snapshot: {
          ...snapshot,
          tokensProcessed: counters.reported.tokens,
          requestCount: counters.reported.requests,
        },
        timestamp,
        proofs,
      });
    } catch (err) {
      return this.#fail(undefined, undefined, errorMessage(err));
    }
    // Written down before it is sent: a process killed while the report is in flight leaves the
    // next one knowing the Oracle may hold it (report_state.ts).
    const before = { tip: this.#tip, unsure: this.#unsure };
    if (!counters.confirming) [this.#tip, this.#unsure] = [counters.next, [...this.#unsure, this.#tip]];
    if (this.#o.stateDir) await this.#save();
    /** The Oracle refused the report for sure (it records nothing it answers 4xx to). */
    const refused = (outcome: ReportOutcome) => {
      [this.#tip, this.#unsure] = [before.tip, before.unsure];
      // a timestamp raised by reports whose answers were lost (perhaps never delivered: a
      // connection refused) may be what it refused: the next goes by the clock again
      this.#lastTimestamp = this.#acceptedTimestamp;
      return outcome;
    };
    /** Its answer says nothing of whether it was recorded. */
    const unclear = (outcome: ReportOutcome) => {
      this.#lastTimestamp = Math.max(this.#lastTimestamp, timestamp);
      return outcome;
    };
    this.#status.sent++;
    const url = oracleEndpoint(this.#o.oracleUrl, "/api/v1/metrics/report");
    let reply: OracleReply;
    try {
      reply = await oracleRequest(url, { method: "POST", body, timeoutMs, signal, fetch: this.#o.fetch });
    } catch (err) {
      if (signal?.aborted) return unclear({ ok: false, body, error: "report cancelled" });
      return unclear(this.#fail(body, undefined, errorMessage(err)));
    }
    this.#checkSkew(reply);
    if (reply.status === 201 || reply.status === 200) {
      const j = reply.json as { success?: unknown; shouldReset?: unknown } | undefined;
      if (!j || typeof j !== "object" || j.success !== true) {
        return unclear(this.#fail(
          body,
          reply.status,
          `Oracle answered ${reply.status} without success: ${reply.text.slice(0, 120)}`,
        ));
      }
      this.#status.accepted++;
      this.#status.lastAccepted = { timestamp, tokensProcessed: body.tokensProcessed };
      this.#status.lastError = undefined;
      this.#lastRefusal = "";
      this.#lastTimestamp = Math.max(this.#lastTimestamp, timestamp);
      this.#acceptedTimestamp = timestamp;
      this.#unsure = [];
      await this.#save();
      // the proofs this report carried, not the oldest queued: some may have been trimmed meanwhile
      const carried = new Set(proofs);
      this.#proofs = this.#proofs.filter((p) => !carried.has(p));
      const shouldReset = j.shouldReset === true;
      if (shouldReset) {
        this.#logger.info("Oracle asked for a reset; counters stay cumulative (the Oracle diffs them)");
      }
      this.#logger.debug("report accepted", { tokensProcessed: body.tokensProcessed, timestamp });
      return { ok: true, body, shouldReset };
    }
    const message = replyMessage(reply);
    const failed = this.#fail(body, reply.status, `Oracle answered ${reply.status}: ${message}`);
    return reply.status >= 400 && reply.status < 500 ? refused(failed) : unclear(failed);
  }

  #fail(body: ReportBody | undefined, status: number | undefined, error: string): ReportOutcome {
    this.#status.failed++;
    this.#status.lastError = error;
    if (error !== this.#lastRefusal) {
      this.#logger.warn("report not accepted; the next one carries the cumulative totals", { error, status });
    } else {
      this.#logger.debug("report not accepted again", { error, status });
    }
    this.#lastRefusal = error;
    return { ok: false, body, status, error };
  }

  #owner() {
    return { wallet: this.#o.signer.address, oracleUrl: this.#o.oracleUrl };
  }

  #restore(): Promise<void> {
    const dir = this.#o.stateDir;
    if (!dir) return Promise.resolve();
    this.#restored ??= loadReportState(dir, this.#owner(), (msg, f) => this.#logger.warn(msg, f)).then(
      (views) => {
        if (!views) return;
        [this.#tip, this.#unsure] = [views.tip, views.unsure];
        this.#logger.info("carrying over what the Oracle has not counted", {
          tokens: -views.tip.counted.tokens,
          requests: -views.tip.counted.requests,
          ...(views.unsure.length ? { reportsUnanswered: views.unsure.length } : {}),
        });
      },
    );
    return this.#restored;
  }

  /** Saves the views with the counters now; a failure is logged (the next report tries again). */
  async #save(): Promise<void> {
    const dir = this.#o.stateDir;
    if (!dir) return;
    try {
      await saveReportState(
        dir,
        this.#owner(),
        { tip: this.#tip, unsure: this.#unsure },
        countersOf(this.#o.metrics.snapshot()),
      );
    } catch (err) {
      this.#logger.warn("cannot save the report state", { dir, error: errorMessage(err) });
    }
  }

  #checkSkew(reply: OracleReply): void {
    if (reply.serverTimeMs === undefined) return;
    const skew = Math.round((reply.serverTimeMs - this.#now()) / 1000);
    this.#status.skewSeconds = skew;
    if (Math.abs(skew) > SKEW_WARN_SECONDS && !this.#skewWarned) {
      this.#skewWarned = true;
      this.#logger.warn(
        "clock skew with the Oracle: reports are rejected beyond 60 s; sync the clock (NTP)",
        {
          skewSeconds: skew,
        },
      );
    }
  }

  /** Stops the loop and sends a final report. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#controller.abort();
    await this.#loop;
    await this.#inFlight;
    if (this.#loop) await this.reportNow({ timeoutMs: this.#o.finalTimeoutMs ?? 5000 });
    // what the final report did not get counted is owed by the next process
    if (this.#restored || this.#loop) {
      await this.#restore();
      await this.#save();
    }
  }
}
