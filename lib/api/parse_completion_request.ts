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
import { booleanOr, invalid, OPENAI_UNSUPPORTED, type UnsupportedFields } from "./_params.ts";
import { type OpenAiCommon, parseOpenAiCommon } from "./openai_request.ts";
import type { GenerationParams } from "./types.ts";

export interface CompletionRequest extends OpenAiCommon {
  /** The prompt, as it goes to the model. */
  readonly prompt: string;
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
  // 0 asks for the chosen tokens' log probabilities: only leaving it out asks for nothing
  logprobs: { idle: () => false, hint: "this node returns no log probabilities; leave logprobs out" },
  suffix: { idle: (v) => v === "", hint: "this node does not fill in the middle; leave suffix out" },
};

export function parseCompletionRequest(body: Record<string, unknown>): CompletionRequest {
  const common = parseOpenAiCommon(body, {
    defaults: COMPLETION_DEFAULTS,
    unsupported: COMPLETION_UNSUPPORTED,
    maxFields: ["max_tokens"],
    single: ["n", "best_of"],
  });
  return { ...common, prompt: promptOf(body.prompt), echo: booleanOr("echo", body.echo, false) };
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
