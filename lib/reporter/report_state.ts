/**
 * What the reporter keeps across restarts, in the data directory: the values of the last report
 * sent (and of earlier ones whose answers were lost: the Oracle may hold any of them), and the
 * tokens and requests it has not counted yet (a final report the Oracle did not take: down at
 * shutdown, the process killed). The next process starts its counters at 0
 * and owes those first: its reports carry them (report_counters.ts), so no counted token is lost
 * to a restart, and the Oracle's diff starts from the value it last accepted. One file per wallet
 * and Oracle, named by a hash of both (the URL may hold a key, and is not written down): switching
 * wallets and back keeps each one's debt. A report is written down before it is sent: a process
 * killed while it is in flight leaves the next one knowing the Oracle may hold it.
 * @module
 */
import { errorMessage } from "../errors.ts";
import { writeTextAtomic } from "../util/write_text_atomic.ts";
import type { Counters, OracleView } from "./report_counters.ts";

const VERSION = 1;

/** The start of the files' names in the data directory (`reporter-<16 hex>.json`). */
export const REPORT_STATE_PREFIX = "reporter-";

/** Whose counters the file holds: another wallet's or another Oracle's are not carried over. */
export interface ReportStateOwner {
  readonly wallet: string;
  readonly oracleUrl: string;
}

interface Saved {
  readonly version: number;
  /** `ownerId` of the owner (checked on load). */
  readonly owner: string;
  readonly reported: Counters;
  readonly owed: Counters;
  /**
   * Other views the Oracle may hold: earlier reports whose answers were lost, or the one in flight
   * when the process ended (written before it is sent). Absent in files of earlier versions.
   */
  readonly unsure?: readonly { readonly reported: Counters; readonly owed: Counters }[];
}

/** What the Oracle holds of this wallet, as far as the node knows (`reportCountersAmong`). */
export interface SavedViews {
  /** The view of the last report sent. */
  readonly tip: OracleView;
  /** Other views it may hold instead (answers lost). */
  readonly unsure: readonly OracleView[];
}

/** A view as a process whose counters start at 0 sees it, from what was owed when it was saved. */
const viewOf = (reported: Counters, owed: Counters): OracleView => ({
  reported,
  counted: { tokens: -owed.tokens, requests: -owed.requests },
});

/** What `view` had not counted of the counters `now`. */
const owedOf = (view: OracleView, now: Counters): Counters => ({
  tokens: Math.max(0, now.tokens - view.counted.tokens),
  requests: Math.max(0, now.requests - view.counted.requests),
});

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isCounters = (v: unknown): v is Counters =>
  typeof v === "object" && v !== null && isCount((v as Counters).tokens) && isCount((v as Counters).requests);

/** A hash of the wallet and the Oracle's URL (SHA-256, hex). */
export async function ownerId(owner: ReportStateOwner): Promise<string> {
  const bytes = new TextEncoder().encode(`${owner.wallet.toLowerCase()}\n${owner.oracleUrl}`);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The state file of the owner whose `ownerId` is `id`, in `dir`. */
function statePath(dir: string, id: string): string {
  return `${dir}/${REPORT_STATE_PREFIX}${id.slice(0, 16)}.json`;
}

/** The state file of `owner` in `dir`. */
export async function reportStatePath(dir: string, owner: ReportStateOwner): Promise<string> {
  return statePath(dir, await ownerId(owner));
}

/**
 * The Oracle's views for a process whose counters start at 0, from `owner`'s saved state in `dir`;
 * undefined when there is none, or it does not parse (`warn` says why).
 */
export async function loadReportState(
  dir: string,
  owner: ReportStateOwner,
  warn: (message: string, fields: Record<string, unknown>) => void = () => {},
): Promise<SavedViews | undefined> {
  const id = await ownerId(owner);
  const path = statePath(dir, id);
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
  const unsure = s?.unsure ?? [];
  if (
    s?.version !== VERSION || !isCounters(s.reported) || !isCounters(s.owed) || !Array.isArray(unsure) ||
    unsure.length > MAX_UNSURE || !unsure.every((u) => isCounters(u?.reported) && isCounters(u?.owed))
  ) {
    warn("the report state is not one this version wrote; starting from none", { path });
    return undefined;
  }
  if (s.owner !== id) return undefined;
  return { tip: viewOf(s.reported, s.owed), unsure: unsure.map((u) => viewOf(u.reported, u.owed)) };
}

/** The most views kept besides the tip (the reporter sends confirming reports rather than add more). */
export const MAX_UNSURE = 8;

/**
 * Saves `owner`'s views in `dir` with the counters `now` (what is owed is their difference),
 * written beside and renamed over.
 */
export async function saveReportState(
  dir: string,
  owner: ReportStateOwner,
  views: SavedViews,
  now: Counters,
): Promise<void> {
  const id = await ownerId(owner);
  const saved: Saved = {
    version: VERSION,
    owner: id,
    reported: views.tip.reported,
    owed: owedOf(views.tip, now),
    ...(views.unsure.length
      ? { unsure: views.unsure.map((v) => ({ reported: v.reported, owed: owedOf(v, now) })) }
      : {}),
  };
  await writeTextAtomic(statePath(dir, id), JSON.stringify(saved) + "\n", { mode: 0o600 });
}
