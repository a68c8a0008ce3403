/**
 * `loadTokenizer`: the model's tokenizer from its `tokenizer.json` (+ `tokenizer_config.json`,
 * `generation_config.json` for the special tokens and the chat template), on
 * `@huggingface/tokenizers`.
 * @module
 */
import { Tokenizer as HfTokenizerImpl } from "@huggingface/tokenizers";
import { RuntimeError } from "../errors.ts";
import { modelFile, readJsonObject, type ResolveOptions } from "./checkpoint.ts";
import { repeatsVaryingGroup, tokenizerRegexes } from "./regex_backtracking.ts";
import type { ModelSource, SpecialToken, Tokenizer } from "./types.ts";

type Json = Record<string, unknown>;

/** `"<s>"` or `{content: "<s>", ...}` → "<s>". */
function tokenText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as Json).content === "string") {
    return (v as Json).content as string;
  }
  return undefined;
}

function chatTemplateOf(cfg: Json): string | undefined {
  const t = cfg.chat_template;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const named = t.filter((x): x is { name?: unknown; template?: unknown } =>
      typeof x === "object" && x !== null
    );
    const template = (named.find((x) => x.name === "default") ?? named[0])?.template;
    return typeof template === "string" ? template : undefined;
  }
  return undefined;
}

class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bos?: SpecialToken;
  readonly eos: readonly SpecialToken[];
  readonly pad?: SpecialToken;
  readonly unk?: SpecialToken;
  readonly chatTemplate?: string;
  readonly #tok: HfTokenizerImpl;

  constructor(tokenizerJson: Json, config: Json, generation: Json) {
    const slow = tokenizerRegexes(tokenizerJson).find(repeatsVaryingGroup);
    if (slow !== undefined) {
      throw new RuntimeError(
        "BAD_CHECKPOINT",
        `tokenizer.json's pattern ${JSON.stringify(slow)} repeats a group that itself repeats or alternates`,
        {
          hint: "such a pattern can take minutes on one prompt (catastrophic backtracking); " +
            "released tokenizers do not have one: check where the checkpoint comes from",
          details: { pattern: slow },
        },
      );
    }
    try {
      this.#tok = new HfTokenizerImpl(tokenizerJson, config);
    } catch (cause) {
      throw new RuntimeError(
        "BAD_CHECKPOINT",
        `tokenizer.json cannot be loaded: ${(cause as Error).message}`,
        {
          hint: "the tokenizer type may not be supported by @huggingface/tokenizers",
          cause,
        },
      );
    }
    const vocab = this.#tok.get_vocab(true);
    let max = -1;
    for (const id of vocab.values()) max = Math.max(max, id);
    this.vocabSize = max + 1;
    const special = (v: unknown): SpecialToken | undefined => {
      const text = tokenText(v);
      if (text === undefined) return undefined;
      const id = this.#tok.token_to_id(text);
      return id === undefined ? undefined : { id, text };
    };
    const byId = (id: number): SpecialToken | undefined => {
      const text = this.#tok.id_to_token(id);
      return text === undefined ? undefined : { id, text };
    };
    // `bos_token: null` (Qwen) says the tokenizer has none, whatever generation_config.json names.
    this.bos = config.bos_token === null ? undefined : special(config.bos_token) ??
      (typeof generation.bos_token_id === "number" ? byId(generation.bos_token_id) : undefined);
    this.pad = special(config.pad_token);
    this.unk = special(config.unk_token);
    const eos = new Map<number, SpecialToken>();
    const e0 = special(config.eos_token);
    if (e0) eos.set(e0.id, e0);
    const genEos = generation.eos_token_id;
    for (const id of typeof genEos === "number" ? [genEos] : Array.isArray(genEos) ? genEos : []) {
      const t = typeof id === "number" ? byId(id) : undefined;
      if (t) eos.set(t.id, t);
    }
    this.eos = [...eos.values()];
    this.chatTemplate = chatTemplateOf(config);
  }

  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.#tok.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return ""; // the library refuses an empty list
    return this.#tok.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? true });
  }
}

/** Builds a tokenizer from already-parsed files (tokenizer.json, tokenizer_config.json, generation_config.json). */
export function tokenizerFromJson(tokenizerJson: Json, config: Json = {}, generation: Json = {}): Tokenizer {
  return new HfTokenizer(tokenizerJson, config, generation);
}

/** Loads the tokenizer of a hub model or local directory (downloading its files if needed). */
export async function loadTokenizer(source: ModelSource, options: ResolveOptions = {}): Promise<Tokenizer> {
  const read = async (file: string, optional: boolean): Promise<Json> => {
    const p = await modelFile(source, file, optional, options);
    if (!p) return {};
    // tokenizer.json of the largest vocabularies is tens of MB; the others are small
    return await readJsonObject(p, file === "tokenizer.json" ? 256 << 20 : 16 << 20) as Json;
  };
  const tj = await read("tokenizer.json", true);
  if (!tj.model) {
    throw new RuntimeError("BAD_CHECKPOINT", `${source.model} has no usable tokenizer.json`, {
      hint: "only fast tokenizers (tokenizer.json) are supported",
    });
  }
  return new HfTokenizer(
    tj,
    await read("tokenizer_config.json", true),
    await read("generation_config.json", true),
  );
}
