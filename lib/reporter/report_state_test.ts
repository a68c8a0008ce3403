import assert from "node:assert/strict";
import { NO_REPORT, reportCounters } from "./report_counters.ts";
import { loadReportState, saveReportState } from "./report_state.ts";

const owner = { wallet: "0x" + "12".repeat(20), oracleUrl: "http://oracle.test" };

Deno.test("report state: what the Oracle has not counted is owed by the next process (counters from 0)", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/reporter.json`;
  try {
    assert.equal(await loadReportState(path, owner), undefined, "none yet");
    // the last accepted report carried 900 tokens; 140 more came before the process stopped
    const accepted = reportCounters({ tokens: 900, requests: 9 }, NO_REPORT).next;
    await saveReportState(path, owner, accepted, { tokens: 1040, requests: 11 });
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const view = (await loadReportState(path, owner))!;
    // the new process has counted 5 tokens, 1 request: the report carries 900 + 140 + 5
    const next = reportCounters({ tokens: 5, requests: 1 }, view);
    assert.deepEqual(next.reported, { tokens: 1045, requests: 12 });
    // another wallet or Oracle starts from nothing
    assert.equal(await loadReportState(path, { ...owner, wallet: "0x" + "34".repeat(20) }), undefined);
    assert.equal(await loadReportState(path, { ...owner, oracleUrl: "http://other.test" }), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report state: a damaged file is ignored with a warning", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/reporter.json`;
  const warnings: string[] = [];
  try {
    for (
      const text of [
        "{not json",
        JSON.stringify({ version: 1, ...owner, reported: { tokens: -1, requests: 0 } }),
      ]
    ) {
      await Deno.writeTextFile(path, text);
      assert.equal(await loadReportState(path, owner, (m) => warnings.push(m)), undefined);
    }
    assert.equal(warnings.length, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
