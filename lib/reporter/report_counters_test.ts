import assert from "node:assert/strict";
import {
  NO_REPORT,
  ORACLE_TOKEN_LIMIT,
  type OracleView,
  reportCounters,
  reportCountersAmong,
} from "./report_counters.ts";

/** The Oracle's rule for one wallet: the diff from the last accepted value, a decrease a restart. */
function oracle() {
  let last = 0, counted = 0;
  return {
    accept(v: number) {
      assert.ok(v >= 0 && v <= ORACLE_TOKEN_LIMIT, `${v} is outside 0..1e9`);
      counted += v >= last ? v - last : v;
      last = v;
    },
    get counted() {
      return counted;
    },
  };
}

Deno.test("reportCounters: below the limit the cumulative counters are reported as they are", () => {
  const r = reportCounters({ tokens: 5, requests: 2 }, NO_REPORT);
  assert.deepEqual(r.reported, { tokens: 5, requests: 2 });
  assert.deepEqual(reportCounters({ tokens: 9, requests: 3 }, r.next).reported, { tokens: 9, requests: 3 });
});

Deno.test("reportCounters: past 1e9 the Oracle still counts every token once (diffs and restarts)", () => {
  for (
    const steps of [
      [400e6, 400e6, 150e6, 300e6, 5, 700e6, 299_999_999, 1, 1],
      [999_999_999, 2, 999_999_999, 999_999_999, 3, 6e8, 6e8, 6e8],
      [1, 1e9 - 1, 1e9, 1, 5e8 + 1, 5e8],
    ]
  ) {
    const o = oracle();
    let view: OracleView = NO_REPORT;
    let total = 0, requests = 0;
    for (const add of steps) {
      total += add;
      requests++;
      const r = reportCounters({ tokens: total, requests }, view);
      o.accept(r.reported.tokens);
      view = r.next;
    }
    // reports with nothing new settle what a report that could carry only part left over
    for (let i = 0; i < 3; i++) {
      const r = reportCounters({ tokens: total, requests }, view);
      o.accept(r.reported.tokens);
      view = r.next;
    }
    assert.equal(o.counted, total, `steps ${steps}`);
  }
});

Deno.test("reportCounters: a failed report changes nothing: the next one is computed from the accepted view", () => {
  const first = reportCounters({ tokens: 9e8, requests: 1 }, NO_REPORT);
  const lost = reportCounters({ tokens: 1.2e9, requests: 2 }, first.next); // never accepted
  const again = reportCounters({ tokens: 1.3e9, requests: 3 }, first.next);
  assert.deepEqual(lost.reported, { tokens: 3e8, requests: 1 });
  assert.deepEqual(
    again.reported,
    { tokens: 4e8, requests: 2 },
    "a restart carrying all since the accepted one",
  );
});

Deno.test("reportCounters: more than 1e9 owed at once: the limit now, the rest by the next report", () => {
  const o = oracle();
  const first = reportCounters({ tokens: 2.5e9, requests: 1 }, NO_REPORT);
  assert.equal(first.reported.tokens, ORACLE_TOKEN_LIMIT);
  o.accept(first.reported.tokens);
  let view = first.next;
  for (let i = 0; i < 3; i++) {
    const r = reportCounters({ tokens: 2.5e9, requests: 1 }, view);
    o.accept(r.reported.tokens);
    view = r.next;
  }
  assert.equal(o.counted, 2.5e9);
});

Deno.test("reportCounters: random runs, some reports lost: the Oracle counts every token once", () => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let run = 0; run < 200; run++) {
    const o = oracle();
    let view: OracleView = NO_REPORT;
    let total = 0, requests = 0;
    for (let i = 0; i < 40; i++) {
      total += Math.floor(rand() < 0.5 ? rand() * 1e6 : rand() * 1.5e9);
      requests += 1;
      const r = reportCounters({ tokens: total, requests }, view);
      if (rand() < 0.2) continue; // not accepted: the view stays
      o.accept(r.reported.tokens);
      view = r.next;
    }
    // a backlog of more than a report can carry goes out with the next reports, a billion or so each
    for (let i = 0; i < 100 && view.counted.tokens < total; i++) {
      const r = reportCounters({ tokens: total, requests }, view);
      o.accept(r.reported.tokens);
      view = r.next;
    }
    assert.equal(o.counted, total, `run ${run}`);
    assert.equal(view.counted.tokens, total);
  }
});

Deno.test("reportCountersAmong: a report whose answer was lost after the Oracle took it is not counted twice", () => {
  // the review's case: 9e8 accepted; 5e7 more recorded but the answer lost; then 8e7 more
  const o = oracle();
  const first = reportCounters({ tokens: 9e8, requests: 1 }, NO_REPORT);
  o.accept(first.reported.tokens);
  const lost = reportCountersAmong({ tokens: 9.5e8, requests: 2 }, first.next, []);
  o.accept(lost.reported.tokens); // recorded; the node never hears of it
  // before: computed from the accepted view alone, a "restart" of 1.3e8 counted in full
  const before = reportCounters({ tokens: 1.03e9, requests: 3 }, first.next);
  assert.equal(before.reported.tokens, 1.3e8);
  const next = reportCountersAmong({ tokens: 1.03e9, requests: 3 }, lost.next, [first.next]);
  assert.equal(next.confirming, true, "a restart would count differently under the two views");
  assert.equal(next.reported.tokens, 9.5e8);
  o.accept(next.reported.tokens);
  const after = reportCountersAmong({ tokens: 1.03e9, requests: 3 }, next.next, []);
  o.accept(after.reported.tokens);
  assert.equal(o.counted, 1.03e9);
});

Deno.test("reportCountersAmong: random runs, answers lost whether recorded or not: never a token counted twice", () => {
  let seed = 11;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let run = 0; run < 300; run++) {
    const o = oracle();
    let tip: OracleView = NO_REPORT, unsure: OracleView[] = [];
    let total = 0, requests = 0;
    const send = (outcome: "accepted" | "refused" | "lost-recorded" | "lost") => {
      const r = reportCountersAmong({ tokens: total, requests }, tip, unsure, { ahead: unsure.length < 8 });
      const before = { tip, unsure };
      if (!r.confirming) [tip, unsure] = [r.next, [...unsure, tip]];
      if (outcome === "accepted" || outcome === "lost-recorded") o.accept(r.reported.tokens);
      if (outcome === "accepted") unsure = [];
      if (outcome === "refused") ({ tip, unsure } = before);
      assert.ok(o.counted <= total, `run ${run}: counted ${o.counted} of ${total}`);
    };
    for (let i = 0; i < 40; i++) {
      total += Math.floor(rand() < 0.5 ? rand() * 1e6 : rand() * 6e8);
      requests += 1;
      const x = rand();
      send(x < 0.5 ? "accepted" : x < 0.6 ? "refused" : x < 0.8 ? "lost-recorded" : "lost");
    }
    for (let i = 0; i < 100 && !(unsure.length === 0 && tip.counted.tokens === total); i++) send("accepted");
    assert.equal(o.counted, total, `run ${run}`);
  }
});
