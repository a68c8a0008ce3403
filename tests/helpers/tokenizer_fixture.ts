/**
 * Tiny tokenizers for the test checkpoints (tests/helpers/checkpoint_fixture.ts):
 * - `buildTokenizer`: a byte-level BPE with a small vocabulary in BLOOM's and Llama 3's shape;
 * - `qwenTokenizerFiles`: one in the shape of Qwen's (Qwen2/Qwen3 `tokenizer.json`: NFC
 *   normalizer, Qwen's split regex then byte-level pre-tokenization, BPE with "a b" string merges,
 *   added tokens after the vocabulary: `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` special;
 *   `<think>`, `</think>`, `<tool_call>`, … not special), its `tokenizer_config.json` (no BOS, eos
 *   `<|im_end|>`, pad `<|endoftext|>`) with Qwen3's published chat template, and its
 *   `generation_config.json`.
 * @module
 */

/** GPT-2's bytes_to_unicode table: byte → the printable character byte-level BPE uses for it. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let i = 33; i <= 126; i++) bs.push(i);
  for (let i = 161; i <= 172; i++) bs.push(i);
  for (let i = 174; i <= 255; i++) bs.push(i);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const table: string[] = new Array(256);
  bs.forEach((b, i) => table[b] = String.fromCodePoint(cs[i]));
  return table;
}

/** An `added_tokens` entry of tokenizer.json. */
function addedToken(id: number, content: string, special: boolean) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special };
}

// ---------------------------------------------------------------- BLOOM / Llama 3 style

const MERGES: Array<[string, string]> = [
  ["Ġ", "t"],
  ["h", "e"],
  ["Ġt", "he"],
  ["i", "n"],
  ["in", "g"],
  ["e", "r"],
  ["Ġ", "a"],
  ["o", "r"],
  ["l", "l"],
  ["e", "ll"],
  ["h", "ell"],
  ["hell", "o"],
  ["Ġ", "w"],
  ["Ġw", "or"],
  ["Ġwor", "l"],
  ["Ġworl", "d"],
  ["Ġ", "i"],
  ["Ġi", "s"],
  ["a", "n"],
  ["Ġa", "n"],
  ["Ġan", "d"],
];

export interface TokenizerSpec {
  /** Special tokens placed before the byte tokens (BLOOM) or after the merges (Llama 3). */
  specialsFirst: boolean;
  specials: string[];
  /** Token added at the start by the post-processor, if any. */
  bosPrepend?: string;
}

export function buildTokenizer(
  spec: TokenizerSpec,
): { json: Record<string, unknown>; size: number; ids: Map<string, number> } {
  const vocab: Record<string, number> = {};
  const ids = new Map<string, number>();
  let next = 0;
  const add = (t: string) => {
    if (!(t in vocab)) {
      vocab[t] = next;
      ids.set(t, next++);
    }
  };
  if (spec.specialsFirst) spec.specials.forEach(add);
  const table = bytesToUnicode();
  const sorted = [...table].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  sorted.forEach(add);
  for (const [a, b] of MERGES) add(a + b);
  const bpeVocab = { ...vocab };
  if (!spec.specialsFirst) spec.specials.forEach(add);
  for (const s of spec.specials) delete bpeVocab[s];
  const added_tokens = spec.specials.map((content) => addedToken(ids.get(content)!, content, true));
  const json: Record<string, unknown> = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens,
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: spec.bosPrepend
      ? {
        type: "TemplateProcessing",
        single: [{ SpecialToken: { id: spec.bosPrepend, type_id: 0 } }, {
          Sequence: { id: "A", type_id: 0 },
        }],
        pair: [
          { SpecialToken: { id: spec.bosPrepend, type_id: 0 } },
          { Sequence: { id: "A", type_id: 0 } },
          { SpecialToken: { id: spec.bosPrepend, type_id: 1 } },
          { Sequence: { id: "B", type_id: 1 } },
        ],
        special_tokens: {
          [spec.bosPrepend]: {
            id: spec.bosPrepend,
            ids: [ids.get(spec.bosPrepend)!],
            tokens: [spec.bosPrepend],
          },
        },
      }
      : { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: false },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: bpeVocab,
      merges: MERGES.map(([a, b]) => [a, b]),
    },
  };
  return { json, size: next, ids };
}

export const LLAMA3_CHAT_TEMPLATE =
  "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

// ---------------------------------------------------------------- Qwen

/** Qwen2/Qwen3's pre-tokenizer split pattern (tokenizer.json `pre_tokenizer.pretokenizers[0]`). */
export const QWEN_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * The chat template Qwen3 checkpoints publish in tokenizer_config.json (ChatML `<|im_start|>role …
 * <|im_end|>` turns, tools, the `<think>` block of the last assistant turns, `enable_thinking`).
 */
export const QWEN3_CHAT_TEMPLATE = String.raw`{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set content = message.content %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is defined and message.reasoning_content is not none %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in message.content %}
                {%- set content = message.content.split('</think>')[-1].lstrip('\n') %}
                {%- set reasoning_content = message.content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}`;

/** A few merges so common words become single tokens (the real vocabulary has 151k entries). */
const QWEN_MERGES = [
  "Ġ t",
  "h e",
  "Ġt he",
  "i n",
  "in g",
  "e r",
  "Ġ a",
  "o r",
  "l l",
  "e ll",
  "h ell",
  "hell o",
  "Ġ w",
  "Ġw or",
  "Ġwor l",
  "Ġworl d",
  "Ġ i",
  "Ġi s",
  "u s",
  "us er",
  "a s",
  "as s",
  "ass i",
  "assi s",
  "assis t",
  "a n",
  "assist an",
  "Ċ Ċ",
];

/** Added tokens in Qwen's order after the BPE vocabulary, with their `special` flag. */
const QWEN_ADDED: Array<[string, boolean]> = [
  ["<|endoftext|>", true],
  ["<|im_start|>", true],
  ["<|im_end|>", true],
  ["<tool_call>", false],
  ["</tool_call>", false],
  ["<tool_response>", false],
  ["</tool_response>", false],
  ["<think>", false],
  ["</think>", false],
];

export interface QwenTokenizerFiles {
  readonly tokenizerJson: Record<string, unknown>;
  readonly tokenizerConfig: Record<string, unknown>;
  readonly generationConfig: Record<string, unknown>;
  /** Tokens in the vocabulary (BPE + added); the model's vocab_size may be padded above it. */
  readonly size: number;
  readonly ids: ReadonlyMap<string, number>;
}

/** Qwen-style tokenizer files for a tiny checkpoint. */
export function qwenTokenizerFiles(): QwenTokenizerFiles {
  const vocab: Record<string, number> = {};
  const ids = new Map<string, number>();
  let next = 0;
  const add = (t: string) => {
    if (!(t in vocab) && !ids.has(t)) ids.set(t, next++);
  };
  const bytes = [...bytesToUnicode()].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  bytes.forEach(add);
  for (const m of QWEN_MERGES) add(m.replace(" ", ""));
  for (const [t, id] of ids) vocab[t] = id;
  for (const [t] of QWEN_ADDED) add(t);
  const added_tokens = QWEN_ADDED.map(([content, special]) =>
    addedToken(ids.get(content)!, content, special)
  );
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
  const tokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens,
    normalizer: { type: "NFC" },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: QWEN_SPLIT_REGEX }, behavior: "Isolated", invert: false },
        byteLevel,
      ],
    },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: QWEN_MERGES,
    },
  };
  const added_tokens_decoder = Object.fromEntries(
    added_tokens.map((t) => [String(t.id), { ...t, id: undefined }]),
  );
  const tokenizerConfig = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder,
    additional_special_tokens: ["<|im_start|>", "<|im_end|>"],
    bos_token: null,
    chat_template: QWEN3_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: "<|im_end|>",
    errors: "replace",
    model_max_length: 131072,
    pad_token: "<|endoftext|>",
    split_special_tokens: false,
    tokenizer_class: "Qwen2Tokenizer",
    unk_token: null,
  };
  const endoftext = ids.get("<|endoftext|>")!, imEnd = ids.get("<|im_end|>")!;
  const generationConfig = {
    bos_token_id: endoftext,
    do_sample: true,
    eos_token_id: [imEnd, endoftext],
    pad_token_id: endoftext,
    temperature: 0.6,
    top_k: 20,
    top_p: 0.95,
  };
  return { tokenizerJson, tokenizerConfig, generationConfig, size: next, ids };
}

// ---------------------------------------------------------------- SentencePiece style

/**
 * A SentencePiece-style tokenizer.json: specials `<unk> <s> </s> <ctl>` (ids 0–3), the 256 byte
 * fallback tokens `<0x00>`…`<0xFF>` (ids 4–259), then a few words with "▁". Its decoder is Llama 2's
 * (▁ → space, bytes fused, one leading space stripped: `"strip"`) or Mistral v0.3's (`"metaspace"`).
 */
export function sentencePieceTokenizerJson(
  decoder: "strip" | "metaspace",
): { json: Record<string, unknown>; ids: ReadonlyMap<string, number> } {
  const pieces = ["<unk>", "<s>", "</s>", "<ctl>"];
  for (let b = 0; b < 256; b++) pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  pieces.push("▁", "▁Hello", "▁world", "▁.", ".", ",", "▁n", "'t", "▁do", "é", "▁東京");
  const vocab = Object.fromEntries(pieces.map((t, i) => [t, i]));
  const replaceSpace = { type: "Replace", pattern: { String: " " }, content: "▁" };
  return {
    ids: new Map(pieces.map((t, i) => [t, i])),
    json: {
      version: "1.0",
      added_tokens: pieces.slice(0, 4).map((content, id) => addedToken(id, content, true)),
      normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, replaceSpace] },
      pre_tokenizer: null,
      post_processor: null,
      decoder: decoder === "strip"
        ? {
          type: "Sequence",
          decoders: [
            { type: "Replace", pattern: { String: "▁" }, content: " " },
            { type: "ByteFallback" },
            { type: "Fuse" },
            { type: "Strip", content: " ", start: 1, stop: 0 },
          ],
        }
        : { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: false },
      model: { type: "BPE", unk_token: "<unk>", fuse_unk: true, byte_fallback: true, vocab, merges: [] },
    },
  };
}
