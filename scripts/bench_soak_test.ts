import assert from "node:assert/strict";
import { generateOnce, runClients, soakArgs } from "./bench_soak.ts";
import { rssGrowth } from "./soak_readings.ts";

const defaults: Parameters<typeof soakArgs>[0] = {
  clients: "4",
  minutes: "2",
  "warmup-minutes": "1",
  "one-minutes": "1",
  tokens: "16",
};

Deno.test("bench soak: options are checked, bad ones name the flag", () => {
  assert.deepEqual(soakArgs(defaults), {
    clients: 4,
    minutes: 2,
    warmupMinutes: 1,
    oneMinutes: 1,
    tokens: 16,
    servers: 3,
  });
  assert.equal(soakArgs({ ...defaults, servers: "1" }).servers, 1);
  assert.deepEqual(soakArgs({ ...defaults, minutes: "0.1", "warmup-minutes": "0" }).minutes, 0.1);
  const bad: [Partial<typeof defaults>, RegExp][] = [
    [{ clients: "0" }, /^--clients must be an integer ≥ 1, got 0$/],
    [{ clients: "1.5" }, /^--clients must be/],
    [{ tokens: "x" }, /^--tokens must be/],
    [{ minutes: "0" }, /^--minutes must be a number > 0, got 0$/],
    [{ "one-minutes": "-1" }, /^--one-minutes must be/],
    [{ "warmup-minutes": "2" }, /^--warmup-minutes must be ≥ 0 and below --minutes, got 2$/],
    [{ "warmup-minutes": "-1" }, /^--warmup-minutes must be/],
    [{ threads: "0" }, /^--threads must be an integer ≥ 1, got 0$/],
    [{ threads: "1.5" }, /^--threads must be/],
    [{ servers: "4" }, /^--servers must be 1, 2, 3 or 6 \(they split 6 blocks\), got 4$/],
  ];
  for (const [v, re] of bad) {
    assert.throws(
      () => soakArgs({ ...defaults, ...v }),
      (err: Error) => err instanceof RangeError && re.test(err.message),
    );
  }
});

Deno.test("bench soak: clients run until told to stop; failures are counted with their messages", async () => {
  let calls = 0;
  const r = await runClients(3, () => calls >= 30, (c, n) => {
    calls++;
    if (c === 1 && n % 2 === 0) return Promise.reject(new Error(`client ${c} failed ${n}`));
    return Promise.resolve(4);
  });
  assert.equal(r.requests, calls);
  assert.ok(r.requests >= 30 && r.requests <= 32, String(r.requests));
  assert.ok(r.failed >= 4, String(r.failed));
  assert.equal(r.tokens, 4 * (r.requests - r.failed));
  assert.match(r.errors[0], /^client 1 failed 0$/);
});

Deno.test("bench soak: a request fails on an HTTP error or a reply without tokens", async () => {
  const replies = [
    new Response(JSON.stringify({ generated_text: "ab", num_tokens: 2 })),
    new Response("busy", { status: 429 }),
    new Response(JSON.stringify({ generated_text: "", num_tokens: 0 })),
  ];
  const seen: unknown[] = [];
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    seen.push(await req.json());
    return replies.shift()!;
  });
  const api = `http://127.0.0.1:${server.addr.port}`;
  assert.equal(await generateOnce(api, "hi", 7), 2);
  assert.deepEqual(seen[0], { inputs: "hi", parameters: { max_new_tokens: 7, do_sample: false } });
  await assert.rejects(generateOnce(api, "hi", 7), /^Error: HTTP 429: busy$/);
  await assert.rejects(generateOnce(api, "hi", 7), /^Error: no tokens/);
});

Deno.test({
  name: "bench soak: a tiny run prints one object with every server's RSS and JS heap, nothing failed",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        new URL("./bench_soak.ts", import.meta.url).pathname,
        ...["--tiny", "--clients", "2", "--minutes", "0.15", "--warmup-minutes", "0.05"],
        ...["--one-minutes", "0.03", "--tokens", "8", "--heap", "--json"],
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const r = JSON.parse(new TextDecoder().decode(out.stdout).trim());
    assert.equal(r.clients, 2);
    assert.equal(r.minutes, 0.15);
    assert.equal(r.warmup_minutes, 0.05);
    assert.equal(r.failed, 0, JSON.stringify(r.errors));
    assert.equal(r.failed_one, 0, JSON.stringify(r.errors));
    assert.ok(r.requests >= 2 && r.requests_one >= 1, `${r.requests} / ${r.requests_one}`);
    assert.ok(r.tokens >= r.requests && r.tokens <= 8 * r.requests, `${r.tokens} tokens`);
    assert.ok(r.tok_s > 0 && r.tok_s_one > 0);
    const names = ["api", "server2", "server3"];
    for (
      const k of [
        "rss_warm_mb",
        "rss_end_mb",
        "heap_warm_mb",
        "heap_end_mb",
        "rss_gc_warm_mb",
        "rss_gc_end_mb",
      ]
    ) {
      assert.deepEqual(Object.keys(r[k]).sort(), names, k);
    }
    for (const k of ["cpu_ms_per_token", "cpu_ms_per_token_one"]) {
      assert.deepEqual(Object.keys(r[k]).sort(), [...names, "clients"].sort(), k);
      assert.ok(Object.values(r[k]).every((v) => typeof v === "number" && v >= 0), JSON.stringify(r[k]));
      assert.ok(r[k].api > 0, `${k}: the API node ran the head and its blocks`);
    }
    assert.deepEqual(Object.keys(r.mean_batch).sort(), names);
    assert.ok(r.mean_batch.api >= 1, `the API node's server ran batches: ${JSON.stringify(r.mean_batch)}`);
    assert.deepEqual(Object.keys(r.windows).sort(), names);
    for (const k of ["idle", "idle_one"]) assert.ok(r[k] >= 0 && r[k] < 1, `${k} is a share: ${r[k]}`);
    const pids = names.map((n) => r.pids[n]);
    assert.equal(new Set(pids).size, 3);
    assert.ok(!pids.includes(Deno.pid));
    for (const n of names) {
      // a server process (Deno, onnxruntime, its blocks) holds well over 50 MiB; its JS heap far less
      assert.ok(
        r.rss_warm_mb[n] > 50 && r.rss_end_mb[n] > 50,
        `${n}: ${r.rss_warm_mb[n]}, ${r.rss_end_mb[n]}`,
      );
      assert.ok(r.heap_end_mb[n] > 1 && r.heap_end_mb[n] < r.rss_end_mb[n], `${n}: heap ${r.heap_end_mb[n]}`);
    }
    assert.equal(r.rss_growth, rssGrowth(r.rss_warm_mb, r.rss_end_mb));
    assert.equal(r.rss_gc_growth, rssGrowth(r.rss_gc_warm_mb, r.rss_gc_end_mb));
    // sampled while it ran: readings at 0 s and at the end, and not one value copied around
    assert.ok(r.rss_series_mb.length >= 2);
    assert.equal(r.rss_series_mb[0].s, 0);
    const readings = r.rss_series_mb.flatMap((x: Record<string, number>) => names.map((n) => x[n]));
    assert.ok(new Set(readings).size > 1, JSON.stringify(r.rss_series_mb));
  },
});
