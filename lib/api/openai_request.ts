/**
 * What OpenAI's chat and text completion bodies share: `model`, one choice (`n`, `best_of`), the
 * refused fields, the sampling (`max_tokens`, `temperature`, `top_p`, `seed`, and the
 * `repetition_penalty` extension), `stop`, `stream` and `stream_options.include_usage`.
 * @module
 */
import {
  booleanOr,
  integerIn,
  invalid,
  MAX_NEW_TOKENS_LIMIT,
  numberIn,
  refuseUnsupported,
  seedOf,
  stopList,
  type UnsupportedFields,
} from "./_params.ts";
import type { GenerationParams } from "./types.ts";

export interface OpenAiCommon {
  /** Model asked for (undefined = the served one). */
  readonly model?: string;
  readonly params: GenerationParams;
  readonly stop: readonly string[];
  readonly stream: boolean;
  /** `stream_options.include_usage`: send a usage chunk before `[DONE]`. */
  readonly includeUsage: boolean;
}

/** How a route reads the common fields. */
export interface OpenAiCommonSpec {
  readonly defaults: GenerationParams;
  /** The fields it refuses unless they ask for nothing. */
  readonly unsupported: UnsupportedFields;
  /** The field that carries the token cap (chat: `max_completion_tokens` before `max_tokens`). */
  readonly maxFields: readonly string[];
  /** Fields that must be 1 when given (`n`, and `best_of` for text completions). */
  readonly single: readonly string[];
}

export function parseOpenAiCommon(body: Record<string, unknown>, spec: OpenAiCommonSpec): OpenAiCommon {
  const model = body.model;
  if (model !== undefined && model !== null && (typeof model !== "string" || model.length === 0)) {
    throw invalid("model", "a model id string", model, "use an id listed by GET /v1/models");
  }
  refuseUnsupported(body, spec.unsupported);
  for (const field of spec.single) {
    const v = body[field];
    if (v !== undefined && v !== null && v !== 1) {
      throw invalid(field, "1 (one choice per request)", v, `leave ${field} out; ask again for more choices`);
    }
  }
  const so = body.stream_options;
  if (so !== undefined && so !== null && (typeof so !== "object" || Array.isArray(so))) {
    throw invalid("stream_options", "an object", so);
  }
  const maxField = spec.maxFields.find((f) => body[f] !== undefined && body[f] !== null) ??
    spec.maxFields.at(-1)!;
  const d = spec.defaults;
  return {
    model: typeof model === "string" ? model : undefined,
    params: {
      maxNewTokens: integerIn(maxField, body[maxField], 1, MAX_NEW_TOKENS_LIMIT, d.maxNewTokens),
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
  };
}
