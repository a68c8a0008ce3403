/**
 * Parses and validates the gateway's `POST /api/v1/generate` body (docs/protocol.md, "Gateway
 * HTTP API"):
 * `{inputs, parameters?: {max_new_tokens, temperature, top_p, repetition_penalty, do_sample, seed, stop}, stream?}`,
 * plus the chat turns the gateway sends beside `inputs` (`messages`): when they are valid chat
 * messages the API renders them with the model's chat template (else `inputs`, the gateway's own
 * rendering, is the prompt; malformed `messages` next to `inputs` are ignored, as before).
 * Other unknown fields are ignored.
 * @module
 */
import { ApiError } from "../errors.ts";
import {
  booleanOr,
  integerIn,
  invalid,
  MAX_NEW_TOKENS_LIMIT,
  numberIn,
  seedOf,
  show,
  stopList,
} from "./_params.ts";
import { parseMessages } from "./parse_chat_request.ts";
import type { ChatMessage, GenerationParams } from "./types.ts";

export interface GenerateRequest {
  /** The prompt text; absent only when valid `messages` were sent instead. */
  readonly inputs?: string;
  /** The gateway's chat turns, when valid. */
  readonly messages?: readonly ChatMessage[];
  readonly params: GenerationParams;
  /** Stop strings (not part of the output). */
  readonly stop: readonly string[];
  readonly stream: boolean;
}

/** Defaults of the gateway's API (docs/protocol.md, "Gateway HTTP API"). */
export const GENERATE_DEFAULTS: GenerationParams = Object.freeze({
  maxNewTokens: 128,
  temperature: 0.7,
  topP: 0.9,
  repetitionPenalty: 1.2,
  doSample: true,
});

export function parseGenerateRequest(body: Record<string, unknown>): GenerateRequest {
  const inputs = body.inputs;
  const hasInputs = typeof inputs === "string" && inputs.length > 0;
  let messages: ChatMessage[] | undefined;
  if (body.messages !== undefined && body.messages !== null) {
    try {
      messages = parseMessages(body.messages);
    } catch (err) {
      if (!hasInputs) throw err;
    }
  }
  if (!hasInputs && !messages) {
    throw new ApiError(400, "INVALID_PARAMETER", `inputs must be a non-empty string, got ${show(inputs)}`, {
      hint: 'send {"inputs": "your prompt", "parameters": {...}} (or chat turns in "messages")',
      details: { param: "inputs" },
    });
  }
  const p = body.parameters ?? {};
  if (p === null || typeof p !== "object" || Array.isArray(p)) {
    throw invalid("parameters", "an object", p);
  }
  const q = p as Record<string, unknown>;
  const d = GENERATE_DEFAULTS;
  const params: GenerationParams = {
    maxNewTokens: integerIn(
      "parameters.max_new_tokens",
      q.max_new_tokens,
      1,
      MAX_NEW_TOKENS_LIMIT,
      d.maxNewTokens,
    ),
    temperature: numberIn("parameters.temperature", q.temperature, 0, 2, d.temperature),
    topP: numberIn("parameters.top_p", q.top_p, 0, 1, d.topP),
    repetitionPenalty: numberIn(
      "parameters.repetition_penalty",
      q.repetition_penalty,
      1,
      2,
      d.repetitionPenalty,
    ),
    doSample: booleanOr("parameters.do_sample", q.do_sample, d.doSample),
    ...seedOf("parameters.seed", q.seed),
  };
  return {
    ...(hasInputs ? { inputs } : {}),
    ...(messages ? { messages } : {}),
    params,
    stop: stopList("parameters.stop", q.stop),
    stream: booleanOr("stream", body.stream, false),
  };
}
