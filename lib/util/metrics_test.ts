import assert from "node:assert/strict";
import { Metrics } from "./metrics.ts";

Deno.test("contribution counters are cumulative; snapshots are immutable", () => {
  let now = 1_000_000;
  const m = new Metrics({ now: () => now });
  m.addRequest();
  m.addTokens(7);
  m.observeLatency(10);
  m.observeLatency(5);
  now += 61_500;
  const a = m.snapshot();
  assert.deepEqual(
    { t: a.tokensProcessed, r: a.requestCount, l: a.avgLatencyMs, u: a.uptimeSeconds },
    { t: 7, r: 1, l: 7.5, u: 61 },
  );
  m.addTokens(3);
  m.addRequest("forward");
  const b = m.snapshot();
  assert.equal(b.tokensProcessed, 10);
  assert.equal(b.requestCount, 2);
  assert.equal(a.tokensProcessed, 7);
  assert.ok(Object.isFrozen(a));
  assert.throws(() => m.addTokens(-1), /≥ 0/);
});

Deno.test("prometheus rendering: counters, labels, histogram buckets, gauges", () => {
  const m = new Metrics();
  m.addTokens(4);
  m.addRequest("forward");
  m.observeLatency(3);
  m.set("plumise_sessions_open", "Open sessions", 2);
  m.gauge("plumise_cache_tokens_free", "Free cache tokens", () => 128);
  const text = m.renderPrometheus();
  assert.match(text, /^# TYPE plumise_tokens_processed_total counter$/m);
  assert.match(text, /^plumise_tokens_processed_total 4$/m);
  assert.match(text, /^plumise_requests_total\{kind="forward"\} 1$/m);
  assert.match(text, /^plumise_step_latency_ms_bucket\{le="2.5"\} 0$/m);
  assert.match(text, /^plumise_step_latency_ms_bucket\{le="5"\} 1$/m);
  assert.match(text, /^plumise_step_latency_ms_count 1$/m);
  assert.match(text, /^plumise_sessions_open 2$/m);
  assert.match(text, /^plumise_cache_tokens_free 128$/m);
});

Deno.test("prometheus rendering: batch sizes and queue waits have buckets of their own", () => {
  const m = new Metrics();
  m.observeBatches([1, 3, 8], [0.2, 4]);
  const text = m.renderPrometheus();
  assert.match(text, /^# TYPE plumise_batch_sessions histogram$/m);
  assert.match(text, /^plumise_batch_sessions_bucket\{le="2"\} 1$/m);
  assert.match(text, /^plumise_batch_sessions_bucket\{le="4"\} 2$/m);
  assert.match(text, /^plumise_batch_sessions_bucket\{le="8"\} 3$/m);
  assert.match(text, /^plumise_batch_sessions_sum 12$/m);
  assert.match(text, /^plumise_batch_queue_wait_ms_bucket\{le="0.25"\} 1$/m);
  assert.match(text, /^plumise_batch_queue_wait_ms_bucket\{le="5"\} 2$/m);
  assert.match(text, /^plumise_batch_queue_wait_ms_count 2$/m);
  assert.doesNotMatch(text, /^plumise_batch_sessions_bucket\{le="2500"\}/m, "not the latency buckets");
});

Deno.test("prometheus rendering: the runtime's waits for its recent sessions, by outcome", () => {
  const m = new Metrics();
  m.observeBatches([2], [0.1], { filled: 3, inVain: 1, ms: 12.5 });
  m.observeBatches([2], [0.1], { filled: 1, inVain: 0, ms: 0.5 });
  const text = m.renderPrometheus();
  assert.match(text, /^plumise_batch_windows_total\{outcome="filled"\} 4$/m);
  assert.match(text, /^plumise_batch_windows_total\{outcome="in_vain"\} 1$/m);
  assert.match(text, /^plumise_batch_window_ms_total 13$/m);
});
