import assert from "node:assert/strict";
import { fakeHidden } from "../../testing/mod.ts";
import { newSpan, SessionState } from "./session_state.ts";
import { MAX_PUSH_BYTES, PUSH_MIN_GAIN_MS, pushPays, SpanLinker } from "./span_links.ts";
import type { RemoteSpanSession, RouteServer, SpanLinks, SpanTransport, SwarmTableView } from "./types.ts";

Deno.test("pushPays: between servers on the client's machine; else where the client is the farther", () => {
  // both servers on the client's machine: a leg and a wake-up of the client saved per hop
  assert.equal(pushPays({ bothLocal: true }), true);
  // loopback RTTs are noise: on one machine the legs saved decide, not a ping difference
  assert.equal(pushPays({ bothLocal: true, clientRttMs: 0.3, serverRttMs: 0.4 }), true);
  // both RTTs known: the client's must exceed the servers' by PUSH_MIN_GAIN_MS
  assert.equal(pushPays({ bothLocal: false, clientRttMs: 40, serverRttMs: 2 }), true); // client at home
  assert.equal(pushPays({ bothLocal: false, clientRttMs: 2 + PUSH_MIN_GAIN_MS, serverRttMs: 2 }), true);
  assert.equal(pushPays({ bothLocal: false, clientRttMs: 2.5, serverRttMs: 2 }), false); // one LAN
  assert.equal(pushPays({ bothLocal: false, clientRttMs: 1, serverRttMs: 30 }), false); // client by the next server
  // servers elsewhere and an RTT unknown: a push replaces a client round trip, so push
  assert.equal(pushPays({ bothLocal: false }), true);
  assert.equal(pushPays({ bothLocal: false, clientRttMs: 3 }), true);
  assert.equal(pushPays({ bothLocal: false, clientRttMs: Number.NaN, serverRttMs: 2 }), true);
});

/** A remote session whose links accept and push at once; `lost` tickets are reported lost. */
let tickets = 0;
function linkedRemote(local: boolean, lost = new Set<unknown>()): RemoteSpanSession {
  const links: SpanLinks = {
    local,
    accept: () => Promise.resolve(`ticket-${++tickets}`),
    pushTo: () => Promise.resolve(),
    lost: (t) => lost.has(t),
    send: () => Promise.resolve(),
    receive: () => Promise.resolve(undefined),
  };
  return { step: (h) => Promise.resolve(h), close: () => Promise.resolve(), links };
}

function chainOf(n: number, push: boolean | "auto" = "auto", lost = new Set<unknown>()) {
  const table: SwarmTableView = { servers: () => [] };
  const s = new SessionState({
    model: "m",
    start: 0,
    end: n,
    maxLength: 8,
    table,
    transport: {} as SpanTransport,
    push,
  });
  s.chain = Array.from({ length: n }, (_, k) => {
    const span = newSpan(k, k + 1, [], { peerId: `P${k}`, start: k, end: k + 1 } as RouteServer);
    span.remote = linkedRemote(true, lost);
    return span;
  });
  return { s, linker: new SpanLinker(s) };
}

Deno.test("SpanLinker: links every open pair in the background, then trusts them; a lost link is not trusted", async () => {
  const lost = new Set<unknown>();
  const { s, linker } = chainOf(4, "auto", lost);
  assert.equal(linker.linkedHops, 0);
  linker.linkAhead();
  await Promise.all(s.chain.map((span) => span.linking));
  assert.equal(linker.linkedHops, 3);
  assert.equal(linker.pushRun(0, fakeHidden(1, 1, 8, 1)), 3);
  assert.equal(linker.pushRun(2, fakeHidden(1, 1, 8, 1)), 1);
  lost.add(s.chain[1].link!.ticket);
  assert.ok(!linker.trusted(1));
  assert.equal(linker.pushRun(0, fakeHidden(1, 1, 8, 1)), 1, "the run stops at the lost link");
  // a lost link is linked again by the next linkAhead
  linker.linkAhead();
  await Promise.all(s.chain.map((span) => span.linking));
  assert.equal(linker.linkedHops, 3);
});

Deno.test("SpanLinker: push false never links; a span still opening or without history is not linkable", async () => {
  const off = chainOf(3, false);
  off.linker.linkAhead();
  await Promise.all(off.s.chain.map((span) => span.linking));
  assert.equal(off.linker.linkedHops, 0);
  const { s, linker } = chainOf(3, true);
  s.chain[1].opening = new Promise(() => {});
  assert.ok(!linker.linkable(0) && !linker.linkable(1));
  s.chain[1].opening = undefined;
  s.chain[2].history = null;
  assert.ok(linker.linkable(0) && !linker.linkable(1));
});

Deno.test("SpanLinker.pushRun: the frame carrying every output of a push stays under MAX_PUSH_BYTES", async () => {
  const { s, linker } = chainOf(6, true);
  linker.linkAhead();
  await Promise.all(s.chain.map((span) => span.linking));
  const perOutput = MAX_PUSH_BYTES / 3; // room for 3 outputs: the input plus 2 pushed spans
  const x = { data: new Float32Array(perOutput / 4), shape: [1, perOutput / 4 / 8, 8] as const };
  assert.equal(linker.pushRun(0, x), 2);
  assert.equal(linker.pushRun(0, fakeHidden(1, 1, 8, 1)), 5);
});
