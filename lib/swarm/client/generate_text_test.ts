import assert from "node:assert/strict";
import { ConfigError } from "../../errors.ts";
import { ALPHABET, FakeBackend, FakeHead, FakeSwarm, FakeTokenizer } from "../../testing/mod.ts";
import { generateText, newConversation, type StepSession } from "./generate_text.ts";
import { SwarmInferenceSession } from "./swarm_inference_session.ts";
import type { Hidden } from "./types.ts";

const H = 16;

async function localSession(maxLength = 128) {
  const b = new FakeBackend({ hiddenSize: H, numBlocks: 9 });
  await b.start();
  return await b.openSession({ start: 0, end: 9, maxLength, batch: 1 });
}

/** Records every step's token count. */
function recording(s: StepSession): StepSession & { sizes: number[] } {
  const sizes: number[] = [];
  return {
    sizes,
    get position() {
      return s.position;
    },
    maxLength: s.maxLength,
    step(h: Hidden, o?: { signal?: AbortSignal }) {
      sizes.push(h.shape[1]);
      return s.step(h, o);
    },
  };
}

async function collect(gen: AsyncIterable<{ tokenId: number; text: string }>) {
  const toks: number[] = [];
  let text = "";
  for await (const t of gen) {
    toks.push(t.tokenId);
    text += t.text;
  }
  return { toks, text };
}

Deno.test("greedy generation yields tokens, deltas concatenate to the text, stops at max tokens", async () => {
  const head = new FakeHead(H), tokenizer = new FakeTokenizer();
  const session = recording(await localSession());
  const gen = generateText({ head, tokenizer, session }, "hello world", {
    maxNewTokens: 12,
    eosTokenIds: [],
  });
  const { toks, text } = await collect(gen);
  assert.equal(toks.length, 12);
  assert.equal(gen.result!.reason, "max_tokens");
  assert.equal(gen.result!.text, text);
  assert.equal(text, tokenizer.decode(toks));
  assert.deepEqual(session.sizes, [11, ...new Array(11).fill(1)], "prefill once, then one token per step");
  assert.equal(gen.result!.promptTokens, 11);
  assert.ok(new Set(toks).size > 1, `the fake model produces varied tokens: ${text}`);
  // deterministic: same again gives the same tokens
  const again = await collect(
    generateText({ head, tokenizer, session: await localSession() }, "hello world", {
      maxNewTokens: 12,
      eosTokenIds: [],
    }),
  );
  assert.deepEqual(again.toks, toks);
});

Deno.test("the swarm session generates exactly what the single-process session generates", async () => {
  const head = new FakeHead(H), tokenizer = new FakeTokenizer();
  const local = await collect(
    generateText({ head, tokenizer, session: await localSession() }, "the quick fox", {
      maxNewTokens: 20,
      eosTokenIds: [],
    }),
  );
  const swarm = new FakeSwarm({ numBlocks: 9, hiddenSize: H });
  await swarm.addServer("A", 0, 3);
  await swarm.addServer("B", 3, 6);
  await swarm.addServer("C", 6, 9);
  await swarm.addServer("B2", 3, 6, { inferenceRps: 1 });
  let steps = 0;
  swarm.onStep = (e) => {
    if (e.peerId === "A") steps++;
    if (e.peerId === "B" && steps === 7) swarm.kill("B");
  };
  const session = new SwarmInferenceSession({
    model: swarm.model,
    start: 0,
    end: 9,
    maxLength: 64,
    table: swarm,
    transport: swarm,
  });
  const remote = await collect(
    generateText({ head, tokenizer, session }, "the quick fox", { maxNewTokens: 20, eosTokenIds: [] }),
  );
  assert.deepEqual(remote.toks, local.toks);
  assert.equal(session.stats.failures, 1, "and a failover happened on the way");
});

Deno.test("long prompts are prefilled in chunks with the same result", async () => {
  const head = new FakeHead(H), tokenizer = new FakeTokenizer();
  const prompt = "a long prompt that needs several chunks, really!!.";
  const one = await collect(generateText({ head, tokenizer, session: await localSession() }, prompt, {
    maxNewTokens: 5,
    eosTokenIds: [],
  }));
  const s = recording(await localSession());
  const chunked = await collect(generateText({ head, tokenizer, session: s }, prompt, {
    maxNewTokens: 5,
    eosTokenIds: [],
    prefillChunkTokens: 16,
  }));
  assert.deepEqual(chunked.toks, one.toks);
  assert.equal(prompt.length, 50);
  assert.deepEqual(s.sizes, [16, 16, 16, 2, 1, 1, 1, 1]);
});

Deno.test("EOS and stop strings end generation; the stop string is cut and never streamed", async () => {
  const head = new FakeHead(H), tokenizer = new FakeTokenizer();
  const free = await collect(
    generateText({ head, tokenizer, session: await localSession() }, "abc", {
      maxNewTokens: 30,
      eosTokenIds: [],
    }),
  );
  // EOS = the 4th generated token id
  const eosId = free.toks[3];
  const g1 = generateText({ head, tokenizer, session: await localSession() }, "abc", {
    maxNewTokens: 30,
    eosTokenIds: [eosId],
  });
  const r1 = await collect(g1);
  assert.equal(g1.result!.reason, "eos");
  assert.deepEqual(r1.toks, free.toks.slice(0, free.toks.indexOf(eosId)));
  // stop string = generated chars 5..7
  const stop = free.text.slice(5, 7);
  const g2 = generateText({ head, tokenizer, session: await localSession() }, "abc", {
    maxNewTokens: 30,
    eosTokenIds: [],
    stopStrings: [stop],
  });
  const r2 = await collect(g2);
  assert.equal(g2.result!.reason, "stop_string");
  assert.equal(r2.text, free.text.slice(0, free.text.indexOf(stop)));
  assert.ok(!r2.text.includes(stop));
});

Deno.test("a conversation continues the same session without recomputing its prefix", async () => {
  const head = new FakeHead(H), tokenizer = new FakeTokenizer();
  // reference: one pass over turn1 + reply1 + turn2
  const s = recording(await localSession());
  const conv = newConversation();
  const g1 = generateText({ head, tokenizer, session: s, conversation: conv }, "hi there", {
    maxNewTokens: 4,
    eosTokenIds: [],
  });
  const r1 = await collect(g1);
  const g2 = generateText({ head, tokenizer, session: s, conversation: conv }, " ok?", {
    maxNewTokens: 4,
    eosTokenIds: [],
  });
  const r2 = await collect(g2);
  // turn 2 prefilled only the pending token + 4 new chars, not the first turn
  assert.deepEqual(s.sizes, [8, 1, 1, 1, 5, 1, 1, 1]);
  assert.equal(conv.tokens.length, s.position);
  // equals a fresh generation over the whole history
  const history = [...tokenizer.encode("hi there"), ...r1.toks, ...tokenizer.encode(" ok?")];
  const fresh = await collect(
    generateText({ head, tokenizer, session: await localSession() }, history, {
      maxNewTokens: 4,
      eosTokenIds: [],
    }),
  );
  assert.deepEqual(r2.toks, fresh.toks);
});

Deno.test("sampling with a seed is reproducible; bad inputs get clear errors", async () => {
  const head = new FakeHead(H), tokenizer = new FakeTokenizer();
  const opts = { maxNewTokens: 10, eosTokenIds: [], temperature: 1.5, topK: 10, topP: 0.95, seed: 11 };
  const a = await collect(generateText({ head, tokenizer, session: await localSession() }, "seed", opts));
  const b = await collect(generateText({ head, tokenizer, session: await localSession() }, "seed", opts));
  assert.deepEqual(a.toks, b.toks);
  assert.ok(a.toks.every((t) => t >= 0 && t < ALPHABET.length));
  await assert.rejects(
    async () =>
      generateText({ head, tokenizer, session: await localSession(16) }, "a long prompt here", {
        maxNewTokens: 8,
      }).complete(),
    (e) =>
      e instanceof ConfigError && e.code === "TOO_LONG" &&
      /18 prompt \+ 8 new tokens need 25/.test(e.message),
  );
  await assert.rejects(
    async () =>
      generateText({ head, tokenizer, session: await localSession() }, "", { maxNewTokens: 3 }).complete(),
    (e) => e instanceof ConfigError && e.code === "EMPTY_PROMPT",
  );
  assert.throws(
    () =>
      generateText(
        {
          head,
          tokenizer,
          session: { position: 0, maxLength: 9, step: () => Promise.reject() },
        },
        "a",
        { maxNewTokens: 0 },
      ),
    /maxNewTokens/,
  );
  const ac = new AbortController();
  const g = generateText({ head, tokenizer, session: await localSession() }, "abc", {
    maxNewTokens: 50,
    signal: ac.signal,
    eosTokenIds: [],
  });
  let n = 0;
  await assert.rejects(async () => {
    for await (const _ of g) if (++n === 3) ac.abort(new Error("stop now"));
  }, /stop now/);
  assert.equal(n, 3);
});

Deno.test("a generation whose first token ends it yields no tokens and no text, with a tokenizer that refuses no ids", async () => {
  const head = new FakeHead(H);
  // as the real tokenizer library: decoding an empty list is an error
  const tokenizer = new (class extends FakeTokenizer {
    override decode(ids: readonly number[]): string {
      if (ids.length === 0) throw new Error("token_ids must be a non-empty array of integers.");
      return super.decode(ids);
    }
  })();
  const first = (await collect(
    generateText({ head, tokenizer, session: await localSession() }, "hello world", {
      maxNewTokens: 1,
      eosTokenIds: [],
    }),
  )).toks[0];
  const gen = generateText({ head, tokenizer, session: await localSession() }, "hello world", {
    maxNewTokens: 8,
    eosTokenIds: [first],
  });
  assert.deepEqual(await collect(gen), { toks: [], text: "" });
  assert.equal(gen.result!.reason, "eos");
  assert.equal(gen.result!.text, "");
});

Deno.test("long generations: each token's text comes from a short window, the same as decoding them all", async () => {
  const head = new FakeHead(H);
  const windows: number[] = [];
  const tokenizer = new (class extends FakeTokenizer {
    override decode(ids: readonly number[]): string {
      windows.push(ids.length);
      return super.decode(ids);
    }
  })();
  const { toks, text } = await collect(
    generateText({ head, tokenizer, session: await localSession() }, "hello world", {
      maxNewTokens: 40,
      eosTokenIds: [],
    }),
  );
  assert.equal(toks.length, 40);
  assert.equal(text, new FakeTokenizer().decode(toks));
  assert.ok(Math.max(...windows) <= 5, `longest decode ${Math.max(...windows)} tokens`);
});
