/**
 * The reporter's bookkeeping against a scripted Oracle (fetch): proofs queued while a report is in
 * flight are carried by the next one, and counters past the Oracle's 1e9 are reported so that the
 * Oracle's diff-or-restart rule counts each token once. tests/reporter_oracle_test.ts runs the
 * reporter against the Oracle stub and a chain.
 */
import assert from "node:assert/strict";
import { Metrics } from "../util/metrics.ts";
import {
  FAILED_RETRY_MS,
  nextReport,
  ORACLE_ACTIVE_WINDOW_MS,
  OracleReporter,
  type OracleReporterOptions,
  reportPeriodMs,
} from "./oracle_reporter.ts";
import type { ReportBody, ReportProof } from "./report_body.ts";

const signer = {
  address: "0x" + "12".repeat(20),
  signMessage: () => Promise.resolve("0x" + "ab".repeat(64) + "1b"),
};

/** An Oracle that accepts every report; `hold()` keeps the next reply until `release()`. */
function scriptedOracle() {
  const bodies: ReportBody[] = [];
  const urls: string[] = [];
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  const fetch = (async (url: string | URL | Request, init?: RequestInit) => {
    urls.push(String(url));
    bodies.push(JSON.parse(String(init?.body)));
    if (gate) await gate;
    return new Response(JSON.stringify({ success: true, shouldReset: false }), {
      status: 201,
      headers: { "content-type": "application/json" },
    });
  }) as typeof globalThis.fetch;
  return {
    bodies,
    urls,
    fetch,
    hold() {
      gate = new Promise((r) => (open = r));
    },
    release() {
      gate = undefined;
      open?.();
    },
  };
}

/** A scripted Oracle behind a link that can go down (`link.up = false`: connections refused). */
function oracleThatGoesDown() {
  const oracle = scriptedOracle();
  const link = { up: true };
  const fetch =
    ((url: string | URL | Request, init?: RequestInit) =>
      link.up
        ? oracle.fetch(url, init)
        : Promise.reject(new TypeError("connection refused"))) as typeof globalThis.fetch;
  return { oracle, fetch, link };
}

const proof = (i: number): ReportProof => ({
  modelHash: "0x" + "00".repeat(32),
  inputHash: "0x" + i.toString(16).padStart(64, "0"),
  outputHash: "0x" + "ff".repeat(32),
  tokenCount: 1,
});

/** A reporter on `fetch` with the tests' wallet and a minute's interval, and its metrics. */
function reporterOn(fetch: typeof globalThis.fetch, extra: Partial<OracleReporterOptions> = {}) {
  const metrics = new Metrics();
  const reporter = new OracleReporter({
    oracleUrl: "http://oracle.test",
    signer,
    metrics,
    intervalMs: 60_000,
    fetch,
    ...extra,
  });
  return { metrics, reporter };
}

Deno.test("reporter: proofs queued while a report is in flight go with the next one", async () => {
  const oracle = scriptedOracle();
  const { reporter } = reporterOn(oracle.fetch);
  for (let i = 1; i <= 64; i++) reporter.addProof(proof(i));
  oracle.hold();
  const first = reporter.reportNow();
  while (oracle.bodies.length === 0) await new Promise((r) => setTimeout(r, 1));
  for (let i = 65; i <= 74; i++) reporter.addProof(proof(i)); // the queue trims 1..10 meanwhile
  oracle.release();
  assert.equal((await first).ok, true);
  assert.equal((await reporter.reportNow()).ok, true);
  const ids = (b: ReportBody) => (b.proofs ?? []).map((p) => parseInt(p.inputHash, 16));
  assert.deepEqual(ids(oracle.bodies[0]), Array.from({ length: 64 }, (_, k) => k + 1));
  // before: the second report carried none (the first 64 of the queue, 11..74, were dropped)
  assert.deepEqual(ids(oracle.bodies[1]), Array.from({ length: 10 }, (_, k) => k + 65));
  await reporter.stop();
});

Deno.test("reporter: past 1e9 tokens the reports go on, and the Oracle's count stays exact", async () => {
  const oracle = scriptedOracle();
  const { metrics, reporter } = reporterOn(oracle.fetch);
  let counted = 0, last = 0;
  const send = async () => {
    const r = await reporter.reportNow();
    assert.ok(r.ok, r.ok ? "" : r.error);
    const v = oracle.bodies.at(-1)!.tokensProcessed;
    counted += v >= last ? v - last : v; // the Oracle's rule: a decrease is a restart
    last = v;
  };
  metrics.addTokens(999_999_990);
  await send();
  metrics.addTokens(20); // 1e9 + 10 in all: before, every report from here on failed
  await send();
  assert.equal(oracle.bodies.at(-1)!.tokensProcessed, 20, "a restart carrying what came since");
  metrics.addTokens(5);
  await send();
  assert.equal(counted, 1_000_000_015);
  await reporter.stop();
});

Deno.test("reporter: an ORACLE_API_URL with a path and a query keeps both", async () => {
  const oracle = scriptedOracle();
  for (
    const [base, want] of [
      ["http://gw.test/oracle?key=k1", "http://gw.test/oracle/api/v1/metrics/report?key=k1"],
      ["http://gw.test/oracle/", "http://gw.test/oracle/api/v1/metrics/report"],
      ["http://gw.test", "http://gw.test/api/v1/metrics/report"],
    ]
  ) {
    const reporter = new OracleReporter({
      oracleUrl: base,
      signer,
      metrics: new Metrics(),
      intervalMs: 1,
      fetch: oracle.fetch,
    });
    assert.equal((await reporter.reportNow()).ok, true);
    // before: the path and the query were dropped (http://gw.test/api/v1/metrics/report)
    assert.equal(oracle.urls.at(-1), want);
  }
});

Deno.test("nextReport: a fixed period, slow replies do not push it, missed slots are skipped, lost reports retried sooner", () => {
  // slot at 60 s; the report ended 0.4 s later: the next at 120 s (not 120.4)
  assert.deepEqual(nextReport(60_000, 60_400, 60_000, false), { slot: 120_000, at: 120_000 });
  // a report that took 70 s: the slot at 120 s is skipped
  assert.deepEqual(nextReport(60_000, 130_000, 60_000, false), { slot: 180_000, at: 180_000 });
  // ended exactly on the next slot: the one after
  assert.deepEqual(nextReport(60_000, 120_000, 60_000, false), { slot: 180_000, at: 180_000 });
  // lost to the network: tried again within FAILED_RETRY_MS, the period kept
  assert.deepEqual(nextReport(60_000, 60_500, 60_000, true), { slot: 120_000, at: 60_500 + FAILED_RETRY_MS });
  // with a period shorter than that, the slot comes first
  assert.deepEqual(nextReport(1_000, 1_200, 10_000, true), { slot: 11_000, at: 11_000 });
});

Deno.test("reporter: tokens a final report could not deliver are carried by the next process's reports", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { oracle, fetch, link } = oracleThatGoesDown();
    const { metrics: first, reporter: a } = reporterOn(fetch, { stateDir: dir, finalTimeoutMs: 200 });
    a.start();
    first.addTokens(100);
    assert.equal((await a.reportNow()).ok, true);
    first.addTokens(40);
    link.up = false; // the Oracle is down when the node stops: the final report fails
    await a.stop();
    link.up = true;
    const { metrics: second, reporter: b } = reporterOn(fetch, { stateDir: dir });
    second.addTokens(7);
    assert.equal((await b.reportNow()).ok, true);
    // before: 7, and the Oracle (a decrease: a restart) counted 7, the 40 lost
    assert.equal(oracle.bodies.at(-1)!.tokensProcessed, 147, "the last accepted 100, the 40 owed, the 7 new");
    await b.stop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reporter: what reports lost to a down Oracle carried is kept on disk before any stop (a killed node)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { oracle, fetch, link } = oracleThatGoesDown();
    const options = { oracleUrl: "http://oracle.test", signer, intervalMs: 60_000, fetch, stateDir: dir };
    const first = new Metrics();
    const a = new OracleReporter({ ...options, metrics: first });
    first.addTokens(100);
    assert.equal((await a.reportNow()).ok, true);
    link.up = false; // the Oracle goes down for a while; the node goes on serving
    first.addTokens(40);
    assert.equal((await a.reportNow()).ok, false);
    first.addTokens(2);
    assert.equal((await a.reportNow()).ok, false);
    // killed here: no stop(), no final report. Before, only the accepted report's state was on disk.
    link.up = true;
    const second = new Metrics();
    const b = new OracleReporter({ ...options, metrics: second });
    second.addTokens(7);
    assert.equal((await b.reportNow()).ok, true);
    assert.equal(oracle.bodies.at(-1)!.tokensProcessed, 149, "the accepted 100, the 42 owed, the 7 new");
    await b.stop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reportPeriodMs: REPORT_INTERVAL as set, but a lost report's retry still lands in the Oracle's window", () => {
  assert.equal(reportPeriodMs(60_000), 60_000);
  assert.equal(reportPeriodMs(10_000), 10_000);
  assert.equal(reportPeriodMs(270_000), 270_000);
  // REPORT_INTERVAL=300 (allowed, upstream's maximum): every report came at the window's very end
  assert.equal(reportPeriodMs(300_000), 270_000);
  assert.ok(reportPeriodMs(300_000) + FAILED_RETRY_MS < ORACLE_ACTIVE_WINDOW_MS);
});

/**
 * An Oracle as docs/protocol.md has it: diffs against the last accepted value (a decrease counted
 * in full), refuses a timestamp not after the last accepted one or more than 60 s off its clock.
 * `lose` makes it record the next report and then lose the answer: "reset" throws, "hang" never
 * answers (until the request's signal aborts).
 */
function countingOracle() {
  const o = { last: 0, counted: 0, lastTs: 0, lose: undefined as "reset" | "hang" | undefined, posted: 0 };
  const fetch = ((_url: string | URL | Request, init?: RequestInit) => {
    o.posted++;
    const b = JSON.parse(String(init?.body)) as ReportBody;
    if (Math.abs(b.timestamp - Date.now() / 1000) > 60 || b.timestamp <= o.lastTs) {
      return Promise.resolve(new Response(JSON.stringify({ error: "Invalid signature" }), { status: 401 }));
    }
    o.counted += b.tokensProcessed >= o.last ? b.tokensProcessed - o.last : b.tokensProcessed;
    [o.last, o.lastTs] = [b.tokensProcessed, b.timestamp];
    const lose = o.lose;
    o.lose = undefined;
    if (lose === "reset") return Promise.reject(new TypeError("connection reset"));
    if (lose === "hang") {
      return new Promise<Response>((_, reject) =>
        init?.signal?.addEventListener("abort", () => reject(init.signal!.reason), { once: true })
      );
    }
    return Promise.resolve(
      new Response(JSON.stringify({ success: true, shouldReset: false }), { status: 201 }),
    );
  }) as typeof globalThis.fetch;
  return { o, fetch };
}

Deno.test("reporter: a report the Oracle recorded but whose answer was lost is not counted twice past 1e9", async () => {
  const { o, fetch } = countingOracle();
  const { metrics, reporter } = reporterOn(fetch);
  metrics.addTokens(9e8);
  assert.equal((await reporter.reportNow()).ok, true);
  metrics.addTokens(5e7);
  o.lose = "reset";
  assert.equal((await reporter.reportNow()).ok, false);
  metrics.addTokens(8e7);
  for (let i = 0; i < 3; i++) {
    assert.equal((await reporter.reportNow()).ok, true);
    assert.ok(o.counted <= 1.03e9, `counted ${o.counted}`); // before: 1.08e9
  }
  assert.equal(o.counted, 1.03e9);
  await reporter.stop();
});

Deno.test("reporter: a process killed while its report was in flight leaves the next one counting right", async () => {
  const dir = await Deno.makeTempDir();
  const copy = await Deno.makeTempDir();
  try {
    const { o, fetch } = countingOracle();
    const options = { oracleUrl: "http://oracle.test", signer, intervalMs: 60_000, fetch };
    const first = new Metrics();
    const a = new OracleReporter({ ...options, metrics: first, stateDir: dir });
    first.addTokens(1000);
    assert.equal((await a.reportNow()).ok, true);
    first.addTokens(500);
    o.lose = "hang"; // recorded, never answered
    const ac = new AbortController();
    const inFlight = a.reportNow({ signal: ac.signal });
    while (o.posted < 2) await new Promise((r) => setTimeout(r, 1));
    // the kill: what is on disk now is all the next process gets
    for await (const e of Deno.readDir(dir)) await Deno.copyFile(`${dir}/${e.name}`, `${copy}/${e.name}`);
    ac.abort();
    await inFlight;
    const second = new Metrics();
    const b = new OracleReporter({ ...options, metrics: second, stateDir: copy });
    second.addTokens(100);
    for (let i = 0; i < 2; i++) {
      await new Promise((r) => setTimeout(r, 1001)); // one report a second
      assert.equal((await b.reportNow()).ok, true);
    }
    // before: 2600 (the state said 1000 accepted; the 1100 reported after it, below the 1500 the
    // Oracle held, counted in full as a restart)
    assert.equal(o.counted, 1600);
    await b.stop();
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(copy, { recursive: true });
  }
});

Deno.test("reporter: once a clock that ran ahead is put right, the next report is accepted", async () => {
  const { o, fetch } = countingOracle();
  let ahead = 3_600_000;
  const { metrics, reporter } = reporterOn(fetch, { now: () => Date.now() + ahead });
  metrics.addTokens(10);
  const refused = await reporter.reportNow();
  assert.equal(refused.ok, false);
  ahead = 0; // NTP steps the clock back
  const r = await reporter.reportNow();
  // before: sent at the refused report's timestamp + 1, an hour ahead, refused for that hour
  assert.equal(r.ok, true, r.ok ? "" : r.error);
  assert.equal(o.counted, 10);
  await reporter.stop();
});

Deno.test("reporter: a clock that ran ahead while the Oracle was unreachable is believed again once refused", async () => {
  const { o, fetch } = countingOracle();
  let down = true, ahead = 3_600_000;
  const flaky =
    ((url: string, init?: RequestInit) =>
      down
        ? Promise.reject(new TypeError("connection refused"))
        : fetch(url, init)) as typeof globalThis.fetch;
  const { metrics, reporter } = reporterOn(flaky, { now: () => Date.now() + ahead });
  metrics.addTokens(10);
  assert.equal((await reporter.reportNow()).ok, false); // lost: its timestamp an hour ahead
  [down, ahead] = [false, 0]; // the Oracle is back, NTP put the clock right
  const first = await reporter.reportNow();
  assert.equal(first.ok, false, "sent after the lost one's timestamp: refused");
  const r = await reporter.reportNow();
  assert.equal(r.ok, true, r.ok ? "" : r.error);
  assert.equal(o.counted, 10);
  await reporter.stop();
});
