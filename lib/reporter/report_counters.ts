/**
 * The counters a report carries. The Oracle refuses a `tokensProcessed` above 1e9, diffs each
 * wallet's counters against its last accepted report, and takes a decrease as a restart, counted
 * in full (docs/protocol.md, "Oracle"). The node's counters are cumulative since it started and
 * can pass 1e9 (a busy node in days): from then on a report carries a value chosen so that what the
 * Oracle counts is exactly what it has not counted yet, by its diff or by a "restart".
 * @module
 */

/** The Oracle's largest `tokensProcessed`. */
export const ORACLE_TOKEN_LIMIT = 1e9;

/** Tokens and requests. */
export interface Counters {
  readonly tokens: number;
  readonly requests: number;
}

/** What the Oracle holds of this node once it has accepted a report (that report's view). */
export interface OracleView {
  /** The values that report carried. */
  readonly reported: Counters;
  /** How much of the node's cumulative counters the Oracle has counted in all. */
  readonly counted: Counters;
}

export interface ReportCounters {
  /** What the report carries. */
  readonly reported: Counters;
  /** The Oracle's view once it accepts the report. */
  readonly next: OracleView;
}

/** The Oracle's view before any report: nothing reported, nothing counted. */
export const NO_REPORT: OracleView = Object.freeze({
  reported: { tokens: 0, requests: 0 },
  counted: { tokens: 0, requests: 0 },
});

/**
 * The counters to report for the node's cumulative `now`, given what the Oracle last accepted.
 * What the Oracle has not counted is carried by a diff from the last value, or else by a restart
 * below it; when neither fits in the limit, the report carries the larger part either way can
 * (the limit by a diff, or just below the last value by a restart) and the next reports the rest.
 */
export function reportCounters(now: Counters, view: OracleView): ReportCounters {
  const last = view.reported;
  const owed = now.tokens - view.counted.tokens;
  let tokens: number, restart: boolean;
  if (last.tokens + owed <= ORACLE_TOKEN_LIMIT) [tokens, restart] = [last.tokens + owed, false];
  else if (owed < last.tokens) [tokens, restart] = [owed, true];
  else if (ORACLE_TOKEN_LIMIT - last.tokens >= last.tokens - 1) {
    [tokens, restart] = [ORACLE_TOKEN_LIMIT, false];
  } else [tokens, restart] = [last.tokens - 1, true];
  const counted = restart ? tokens : tokens - last.tokens;
  const newRequests = now.requests - view.counted.requests;
  const requests = restart ? newRequests : last.requests + newRequests;
  return {
    reported: { tokens, requests },
    next: {
      reported: { tokens, requests },
      counted: { tokens: view.counted.tokens + counted, requests: now.requests },
    },
  };
}

/** What the Oracle counts of `value` after it last accepted `last`: the diff, or all of it (a restart). */
export function oracleCounts(last: number, value: number): number {
  return value >= last ? value - last : value;
}

/** A report's counters when the Oracle's view is not known for sure (`reportCountersAmong`). */
export interface UnsureReportCounters extends ReportCounters {
  /** The report repeats `tip`'s values: it settles which view the Oracle holds, counting nothing new. */
  readonly confirming: boolean;
}

/**
 * The counters to report for the node's cumulative `now` when the Oracle holds `tip` (the view of
 * the last report sent) or any of `others` (views of earlier reports whose answers were lost: a
 * timeout, a reset, a 5xx after it may have recorded them). What `reportCounters` gives from `tip`
 * is sent when the Oracle counts the same under every one of them (a diff below the limit always
 * does: cumulative values make a lost answer harmless); otherwise — a "restart" past 1e9, counted
 * in full — `tip`'s own values again: the Oracle then counts nothing if it holds them and what they
 * carried if it does not, and from its answer the view is known. Without this, a report whose
 * answer was lost was counted twice (docs/protocol.md, "Oracle").
 */
export function reportCountersAmong(
  now: Counters,
  tip: OracleView,
  others: readonly OracleView[],
  { ahead = true }: { ahead?: boolean } = {},
): UnsureReportCounters {
  const next = reportCounters(now, tip);
  const agrees = (v: OracleView) =>
    v.counted.tokens + oracleCounts(v.reported.tokens, next.reported.tokens) === next.next.counted.tokens;
  if (ahead && others.every(agrees)) return { ...next, confirming: false };
  return { reported: tip.reported, next: tip, confirming: true };
}
