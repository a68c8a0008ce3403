/**
 * `POST /v1/chat/completions`, the OpenAI adapter: messages rendered with the checkpoint's chat
 * template, `chat.completion` with `usage`, or `chat.completion.chunk` events (role, content
 * deltas, finish, optional usage) ending with `data: [DONE]`.
 * @module
 */
import { ApiError } from "../errors.ts";
import { type ApiContext, countTokens, jsonResponse, type RouteDeps } from "./api_env.ts";
import { failure, streamErrorEvent } from "./api_errors.ts";
import { completeRun, type FinishReason, firstPiece, fitContext, startRun } from "./generation_run.ts";
import { parseChatRequest } from "./parse_chat_request.ts";
import { readJsonBody } from "./read_json_body.ts";
import { renderChatPrompt } from "./render_chat_prompt.ts";
import { sseStream } from "./sse_stream.ts";

export function chatRoute(d: RouteDeps): (c: ApiContext) => Promise<Response> {
  return async (c) => {
    d.slots.refuseUnlessOpen();
    const req = parseChatRequest(
      await readJsonBody(c.req.raw, '{"messages": [{"role": "user", "content": "Hello"}]}'),
    );
    checkModel(d, req.model);
    // the client's signal: a client that goes away stops its generation (deno.json: no-legacy-abort)
    const slot = d.slots.take({ signal: c.req.raw.signal });
    const { signal, release } = slot;
    try {
      await d.generator.prepare?.({ signal });
      const info = d.generator.info();
      const prompt = renderChatPrompt(req.messages, info, req.templateKwargs);
      // the checkpoint's template writes its special tokens; the plain fallback is a raw prompt
      const templated = Boolean(info.chatTemplate);
      const { params, promptTokens } = fitContext(d.generator, prompt, req.params, "max_tokens", d.log, {
        templated,
      });
      const id = `chatcmpl-${crypto.randomUUID().replaceAll("-", "")}`;
      const created = Math.floor(d.now() / 1000);
      const usage = (n: number) => ({
        prompt_tokens: promptTokens,
        completion_tokens: n,
        total_tokens: promptTokens + n,
      });
      const run = startRun(d.generator, prompt, params, req.stop, { signal, templated });
      if (!req.stream) {
        await completeRun(run, release);
        countTokens(d.metrics, run.state.tokens);
        return jsonResponse(200, {
          id,
          object: "chat.completion",
          created,
          model: info.model,
          choices: [{
            index: 0,
            message: { role: "assistant", content: run.state.text },
            logprobs: null,
            finish_reason: run.state.finishReason,
          }],
          usage: usage(run.state.tokens),
        });
      }
      const chunk = (delta: Record<string, unknown>, finish: FinishReason | null) => ({
        id,
        object: "chat.completion.chunk",
        created,
        model: info.model,
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      });
      const first = await firstPiece(run, release);
      return sseStream(c, async (w) => {
        w.signal.addEventListener("abort", () => slot.abort(w.signal.reason), { once: true });
        try {
          w.send(chunk({ role: "assistant", content: "" }, null));
          if (first !== null) {
            w.send(chunk({ content: first }, null));
            for await (const piece of run.pieces) w.send(chunk({ content: piece }, null));
          }
          w.send(chunk({}, run.state.finishReason));
          if (req.includeUsage) {
            w.send({
              id,
              object: "chat.completion.chunk",
              created,
              model: info.model,
              choices: [],
              usage: usage(run.state.tokens),
            });
          }
          w.sendRaw("[DONE]");
        } catch (err) {
          w.send(streamErrorEvent(failure(err, d.timeoutMs, d.log, "chat"), "chat"));
        } finally {
          countTokens(d.metrics, run.state.tokens);
        }
      }, release);
    } catch (err) {
      release();
      throw err;
    }
  };
}

/** 404 `model_not_found` unless `model` is absent or the served one. */
export function checkModel(d: Pick<RouteDeps, "generator">, model: string | undefined): void {
  const served = d.generator.info().model;
  if (model !== undefined && model !== served) {
    throw new ApiError(404, "MODEL_NOT_FOUND", `model ${JSON.stringify(model)} is not served by this node`, {
      hint: `use "${served}" (see GET /v1/models)`,
      details: { param: "model" },
    });
  }
}
