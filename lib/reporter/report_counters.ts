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

/** What the Oracle holds of this node after an accepted report. */
export interface OracleView {
  /** The values the last accepted report carried. */
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
