/**
 * What the reporter keeps across restarts, in the data directory: the values of the Oracle's last
 * accepted report, and the tokens and requests it has not counted yet (a final report the Oracle
 * did not take: down at shutdown, the process killed). The next process starts its counters at 0
 * and owes those first: its reports carry them (report_counters.ts), so no counted token is lost
 * to a restart, and the Oracle's diff starts from the value it last accepted.
 * @module
 */
import { errorMessage } from "../errors.ts";
import type { Counters, OracleView } from "./report_counters.ts";

const VERSION = 1;

/** The file's name in the data directory. */
export const REPORT_STATE_FILE = "reporter.json";

/** Whose counters the file holds: another wallet's or another Oracle's are not carried over. */
export interface ReportStateOwner {
  readonly wallet: string;
  readonly oracleUrl: string;
}

interface Saved extends ReportStateOwner {
  readonly version: number;
  readonly reported: Counters;
  readonly owed: Counters;
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isCounters = (v: unknown): v is Counters =>
  typeof v === "object" && v !== null && isCount((v as Counters).tokens) && isCount((v as Counters).requests);

/**
 * The Oracle's view for a process whose counters start at 0, from the saved state; undefined when
 * there is none, it is another owner's, or it does not parse (`warn` says why).
 */
export async function loadReportState(
  path: string,
  owner: ReportStateOwner,
  warn: (message: string, fields: Record<string, unknown>) => void = () => {},
): Promise<OracleView | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      warn("cannot read the report state", { path, error: errorMessage(err) });
    }
    return undefined;
  }
  let s: Partial<Saved>;
  try {
    s = JSON.parse(text);
  } catch (err) {
    warn("the report state is not JSON; starting from none", { path, error: errorMessage(err) });
    return undefined;
  }
  if (s?.version !== VERSION || !isCounters(s.reported) || !isCounters(s.owed)) {
    warn("the report state is not one this version wrote; starting from none", { path });
    return undefined;
  }
  if (s.wallet !== owner.wallet || s.oracleUrl !== owner.oracleUrl) return undefined;
  return { reported: s.reported, counted: { tokens: -s.owed.tokens, requests: -s.owed.requests } };
}

/** Saves `view` with the counters `now` (what is owed is their difference), written beside and renamed over. */
export async function saveReportState(
  path: string,
  owner: ReportStateOwner,
  view: OracleView,
  now: Counters,
): Promise<void> {
  const saved: Saved = {
    version: VERSION,
    wallet: owner.wallet,
    oracleUrl: owner.oracleUrl,
    reported: view.reported,
    owed: {
      tokens: Math.max(0, now.tokens - view.counted.tokens),
      requests: Math.max(0, now.requests - view.counted.requests),
    },
  };
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  try {
    await Deno.writeTextFile(tmp, JSON.stringify(saved) + "\n", { mode: 0o600 });
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}
