/**
 * Parses and validates an OpenAI `POST /v1/completions` body (the legacy text completion that
 * editors, evaluation harnesses and LangChain's `OpenAI` class call): `{model?, prompt, max_tokens,
 * temperature, top_p, stop, stream, stream_options: {include_usage}, seed, echo, n, best_of,
 * repetition_penalty}`. The prompt is raw text (no chat template). OpenAI's defaults apply
 * (`max_tokens` 16, temperature 1, top_p 1); fields this node cannot honour that would change the
 * answer (`logprobs`, `suffix`, penalties, `logit_bias`) are refused, unknown ones ignored.
 * @module
 */
import { ApiError } from "../errors.ts";
import {
  booleanOr,
  integerIn,
  invalid,
  MAX_NEW_TOKENS_LIMIT,
  numberIn,
  OPENAI_UNSUPPORTED,
  refuseUnsupported,
  seedOf,
  stopList,
  type UnsupportedFields,
} from "./_params.ts";
import type { GenerationParams } from "./types.ts";

export interface CompletionRequest {
  /** Model asked for (undefined = the served one). */
  readonly model?: string;
  /** The prompt, as it goes to the model. */
  readonly prompt: string;
  readonly params: GenerationParams;
  readonly stop: readonly string[];
  readonly stream: boolean;
  readonly includeUsage: boolean;
  /** Whether the answer starts with the prompt (`echo`). */
  readonly echo: boolean;
}

export const COMPLETION_DEFAULTS: GenerationParams = Object.freeze({
  maxNewTokens: 16,
  temperature: 1,
  topP: 1,
  repetitionPenalty: 1,
  doSample: true,
});

/** What text completions may not ask for (`refuseUnsupported`), with the values that ask for nothing. */
const COMPLETION_UNSUPPORTED: UnsupportedFields = {
  ...OPENAI_UNSUPPORTED,
  logprobs: { idle: (v) => v === 0, hint: "this node returns no log probabilities; leave logprobs out" },
  suffix: { idle: (v) => v === "", hint: "this node does not fill in the middle; leave suffix out" },
};

export function parseCompletionRequest(body: Record<string, unknown>): CompletionRequest {
  const model = body.model;
  if (model !== undefined && model !== null && (typeof model !== "string" || model.length === 0)) {
    throw invalid("model", "a model id string", model, "use an id listed by GET /v1/models");
  }
  refuseUnsupported(body, COMPLETION_UNSUPPORTED);
  for (const field of ["n", "best_of"] as const) {
    const v = body[field];
    if (v !== undefined && v !== null && v !== 1) {
      throw invalid(field, "1 (one choice per request)", v, `leave ${field} out; ask again for more choices`);
    }
  }
  const so = body.stream_options;
  if (so !== undefined && so !== null && (typeof so !== "object" || Array.isArray(so))) {
    throw invalid("stream_options", "an object", so);
  }
  const d = COMPLETION_DEFAULTS;
  return {
    model: typeof model === "string" ? model : undefined,
    prompt: promptOf(body.prompt),
    params: {
      maxNewTokens: integerIn("max_tokens", body.max_tokens, 1, MAX_NEW_TOKENS_LIMIT, d.maxNewTokens),
      temperature: numberIn("temperature", body.temperature, 0, 2, d.temperature),
      topP: numberIn("top_p", body.top_p, 0, 1, d.topP),
      repetitionPenalty: numberIn("repetition_penalty", body.repetition_penalty, 1, 2, d.repetitionPenalty),
      doSample: true,
      ...seedOf("seed", body.seed),
    },
    stop: stopList("stop", body.stop),
    stream: booleanOr("stream", body.stream, false),
    includeUsage: booleanOr(
      "stream_options.include_usage",
      (so as Record<string, unknown> | undefined)?.include_usage,
      false,
    ),
    echo: booleanOr("echo", body.echo, false),
  };
}

/**
 * `prompt`: a non-empty string, or an array holding one (a batch of prompts would need `n`
 * choices; token arrays need the client's tokenizer to match ours).
 */
function promptOf(value: unknown): string {
  const one = Array.isArray(value) && value.length === 1 ? value[0] : value;
  if (typeof one === "string" && one.length > 0) return one;
  if (Array.isArray(value) && value.some((v) => typeof v === "number" || Array.isArray(v))) {
    throw new ApiError(400, "UNSUPPORTED", "prompt as token ids is not supported by this node", {
      hint: "send the prompt as text: token ids are the client's tokenizer's, not necessarily this model's",
      details: { param: "prompt" },
    });
  }
  if (Array.isArray(value) && value.length > 1) {
    throw new ApiError(
      400,
      "UNSUPPORTED",
      `prompt holds ${value.length} prompts; this node answers one per request`,
      {
        hint: "send each prompt in a request of its own",
        details: { param: "prompt" },
      },
    );
  }
  throw invalid(
    "prompt",
    "a non-empty string (or an array of one)",
    value,
    'send {"prompt": "Once upon a time"}',
  );
}
