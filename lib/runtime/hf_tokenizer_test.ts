import assert from "node:assert/strict";
import { makeLlamaCheckpoint } from "../../tests/helpers/checkpoint_fixture.ts";
import { qwenTokenizerFiles } from "../../tests/helpers/tokenizer_fixture.ts";
import { RuntimeError } from "../errors.ts";
import { tokenizerFromJson } from "./hf_tokenizer.ts";

Deno.test("tokenizerFromJson: named chat templates, eos from generation_config, round trip", async () => {
  const ck = await makeLlamaCheckpoint({ numLayers: 1, shards: 1 });
  const tj = JSON.parse(await Deno.readTextFile(`${ck.dir}/tokenizer.json`));
  const tok = tokenizerFromJson(tj, {
    bos_token: { content: "<|begin_of_text|>" },
    chat_template: [{ name: "default", template: "T" }, { name: "tool_use", template: "U" }],
  }, {
    eos_token_id: 260,
  });
  assert.equal(tok.chatTemplate, "T");
  assert.equal(tok.bos?.text, "<|begin_of_text|>");
  assert.deepEqual(tok.eos.map((t) => t.id), [260]);
  const text = "and the world, hello!";
  assert.equal(tok.decode(tok.encode(text)), text);
  // no tokens (a generation whose first token ends it) is no text, not the library's error
  assert.equal(tok.decode([]), "");
});

Deno.test("tokenizer: a chat_template list with null or template-less entries gives no template, not a crash", async () => {
  const ck = await makeLlamaCheckpoint({ numLayers: 1 });
  const tj = JSON.parse(await Deno.readTextFile(`${ck.dir}/tokenizer.json`));
  assert.equal(tokenizerFromJson(tj, { chat_template: [null] }).chatTemplate, undefined);
  assert.equal(
    tokenizerFromJson(tj, { chat_template: [{ name: "default", template: 5 }] }).chatTemplate,
    undefined,
  );
  assert.equal(
    tokenizerFromJson(tj, { chat_template: [null, { name: "default", template: "x" }] }).chatTemplate,
    "x",
  );
});

Deno.test("tokenizer: a pre-tokenizer pattern that backtracks catastrophically is refused at load", () => {
  const files = qwenTokenizerFiles();
  const tj = structuredClone(files.tokenizerJson) as Record<string, unknown>;
  // Qwen's own pattern loads
  assert.ok(tokenizerFromJson(tj, files.tokenizerConfig));
  const pre = tj.pre_tokenizer as { pretokenizers: Array<{ pattern: { Regex: string } }> };
  pre.pretokenizers[0].pattern.Regex = "(a|aa)+$";
  assert.throws(
    () => tokenizerFromJson(tj, files.tokenizerConfig),
    (e: unknown) =>
      e instanceof RuntimeError && e.code === "BAD_CHECKPOINT" && /repeats a group/.test(e.message),
  );
});
