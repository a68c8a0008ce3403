/**
 * One generation answered the OpenAI way, for chat and text completions alike: a JSON reply with
 * one choice and `usage`, or Server-Sent Events of chunks (an opening chunk where the route has
 * one, a chunk per piece of text, a chunk with the finish reason, an optional usage chunk) ending
 * with `data: [DONE]`; an error after the first event ends the stream in OpenAI's error shape.
 * @module
 */
import { type ApiContext, countTokens, jsonResponse, type Route, type RouteDeps } from "./api_env.ts";
import { failure, streamErrorEvent } from "./api_errors.ts";
import { completeRun, type FinishReason, firstPiece, fitContext, startRun } from "./generation_run.ts";
import { sseStream } from "./sse_stream.ts";
import type { GenerationParams } from "./types.ts";

/** What a route asks of `openAiGeneration`. */
export interface OpenAiGeneration {
  readonly route: Route;
  /** `chatcmpl` or `cmpl`. */
  readonly idPrefix: string;
  /** The reply's `object` and its chunks' (`chat.completion`, `chat.completion.chunk`). */
  readonly object: string;
  readonly chunkObject: string;
  readonly prompt: string;
  /** Whether the prompt came from the chat template (it writes its own special tokens). */
  readonly templated: boolean;
  readonly params: GenerationParams;
  /** The field that set the token cap, for the log when the context caps it. */
  readonly maxField: string;
  readonly stop: readonly string[];
  readonly stream: boolean;
  readonly includeUsage: boolean;
  /** The reply's one choice, without `index` and `logprobs`; it may set `finish_reason`. */
  choice(text: string): Record<string, unknown>;
  /** The choices of the chunks to send for a piece of text (none: held back), without `index`. */
  chunkChoices(piece: string): Record<string, unknown>[];
  /** The choices of the last chunks; the last one gets the finish reason unless it sets its own. */
  closingChoices(): Record<string, unknown>[];
  /** The chunk a stream opens with, before any text (chat: the role), if any. */
  readonly opening?: Record<string, unknown>;
}

/** Runs `g` in `slot` and answers it; the slot is released when the answer ends, however it ends. */
export async function openAiGeneration(
  d: RouteDeps,
  c: ApiContext,
  g: OpenAiGeneration,
  slot: { signal: AbortSignal; release: () => void; abort: (reason?: unknown) => void },
): Promise<Response> {
  const { signal, release } = slot;
  const info = d.generator.info();
  const { params, promptTokens } = fitContext(d.generator, g.prompt, g.params, g.maxField, d.log, {
    templated: g.templated,
  });
  const id = `${g.idPrefix}-${crypto.randomUUID().replaceAll("-", "")}`;
  const created = Math.floor(d.now() / 1000);
  const usage = (n: number) => ({
    prompt_tokens: promptTokens,
    completion_tokens: n,
    total_tokens: promptTokens + n,
  });
  const run = startRun(d.generator, g.prompt, params, g.stop, { signal, templated: g.templated });
  const head = { id, created, model: info.model };
  if (!g.stream) {
    await completeRun(run, release);
    countTokens(d.metrics, run.state.tokens);
    return jsonResponse(200, {
      id,
      object: g.object,
      created,
      model: info.model,
      choices: [{
        index: 0,
        logprobs: null,
        finish_reason: run.state.finishReason,
        ...g.choice(run.state.text),
      }],
      usage: usage(run.state.tokens),
    });
  }
  const chunk = (choice: Record<string, unknown>, finish: FinishReason | null) => ({
    ...head,
    object: g.chunkObject,
    choices: [{ index: 0, logprobs: null, finish_reason: finish, ...choice }],
  });
  const first = await firstPiece(run, release);
  return sseStream(c, async (w) => {
    w.signal.addEventListener("abort", () => slot.abort(w.signal.reason), { once: true });
    try {
      if (g.opening) w.send(chunk(g.opening, null));
      const send = (piece: string) => {
        for (const choice of g.chunkChoices(piece)) w.send(chunk(choice, null));
      };
      if (first !== null) {
        send(first);
        for await (const piece of run.pieces) send(piece);
      }
      const closing = g.closingChoices();
      closing.forEach((choice, i) =>
        w.send(chunk(choice, i === closing.length - 1 ? run.state.finishReason : null))
      );
      if (g.includeUsage) {
        w.send({ ...head, object: g.chunkObject, choices: [], usage: usage(run.state.tokens) });
      }
      w.sendRaw("[DONE]");
    } catch (err) {
      w.send(streamErrorEvent(failure(err, d.timeoutMs, d.log, g.route), g.route));
    } finally {
      countTokens(d.metrics, run.state.tokens);
    }
  }, release);
}
