import assert from "node:assert/strict";
import { NO_REPORT, reportCounters } from "./report_counters.ts";
import { loadReportState, reportStatePath, saveReportState } from "./report_state.ts";

const owner = { wallet: "0x" + "12".repeat(20), oracleUrl: "http://oracle.test/?apikey=s3cret" };

Deno.test("report state: what the Oracle has not counted is owed by the next process (counters from 0)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal(await loadReportState(dir, owner), undefined, "none yet");
    // the last accepted report carried 900 tokens; 140 more came before the process stopped
    const accepted = reportCounters({ tokens: 900, requests: 9 }, NO_REPORT).next;
    await saveReportState(dir, owner, { tip: accepted, unsure: [] }, { tokens: 1040, requests: 11 });
    const path = await reportStatePath(dir, owner);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.doesNotMatch(await Deno.readTextFile(path), /s3cret|oracle\.test/, "the URL is not written down");
    const { tip: view, unsure } = (await loadReportState(dir, owner))!;
    assert.deepEqual(unsure, []);
    // the new process has counted 5 tokens, 1 request: the report carries 900 + 140 + 5
    const next = reportCounters({ tokens: 5, requests: 1 }, view);
    assert.deepEqual(next.reported, { tokens: 1045, requests: 12 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report state: each wallet and Oracle has its own file; switching and back keeps each debt", async () => {
  const dir = await Deno.makeTempDir();
  const other = { ...owner, wallet: "0x" + "34".repeat(20) };
  try {
    await saveReportState(dir, owner, { tip: NO_REPORT, unsure: [] }, { tokens: 40, requests: 1 });
    assert.equal(await loadReportState(dir, other), undefined);
    assert.equal(await loadReportState(dir, { ...owner, oracleUrl: "http://other.test" }), undefined);
    await saveReportState(dir, other, { tip: NO_REPORT, unsure: [] }, { tokens: 7, requests: 1 });
    assert.deepEqual((await loadReportState(dir, owner))!.tip.counted, { tokens: -40, requests: -1 });
    assert.deepEqual((await loadReportState(dir, other))!.tip.counted, { tokens: -7, requests: -1 });
    assert.notEqual(await reportStatePath(dir, owner), await reportStatePath(dir, other));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report state: a damaged file is ignored with a warning", async () => {
  const dir = await Deno.makeTempDir();
  const path = await reportStatePath(dir, owner);
  const warnings: string[] = [];
  try {
    for (
      const text of [
        "{not json",
        JSON.stringify({ version: 1, owner: "x", reported: { tokens: -1, requests: 0 } }),
      ]
    ) {
      await Deno.writeTextFile(path, text);
      assert.equal(await loadReportState(dir, owner, (m) => warnings.push(m)), undefined);
    }
    assert.equal(warnings.length, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report state: the views of reports whose answers were lost are kept, each with what it owes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const accepted = reportCounters({ tokens: 900, requests: 9 }, NO_REPORT).next;
    const inFlight = reportCounters({ tokens: 1000, requests: 10 }, accepted).next;
    await saveReportState(dir, owner, { tip: inFlight, unsure: [accepted] }, { tokens: 1040, requests: 11 });
    const { tip, unsure } = (await loadReportState(dir, owner))!;
    assert.deepEqual(tip, {
      reported: { tokens: 1000, requests: 10 },
      counted: { tokens: -40, requests: -1 },
    });
    assert.deepEqual(unsure, [{
      reported: { tokens: 900, requests: 9 },
      counted: { tokens: -140, requests: -2 },
    }]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
