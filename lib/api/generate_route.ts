/**
 * `POST /api/v1/generate` (the gateway's route, docs/protocol.md): `{inputs, parameters, stream}`
 * (the gateway's chat turns in `messages` are rendered with the chat template when it has one) →
 * `{generated_text, num_tokens, latency_ms}`, or Server-Sent Events `data: {"token": …}` …
 * `data: [DONE]` (`data: {"error": …, "code": …}` when it fails after the first token).
 * @module
 */
import { type ApiContext, countTokens, jsonResponse, type RouteDeps } from "./api_env.ts";
import { failure, streamErrorEvent } from "./api_errors.ts";
import { completeRun, firstPiece, fitContext, startRun } from "./generation_run.ts";
import { parseGenerateRequest } from "./parse_generate_request.ts";
import { readJsonBody } from "./read_json_body.ts";
import { renderChatPrompt } from "./render_chat_prompt.ts";
import { sseStream } from "./sse_stream.ts";

export function generateRoute(d: RouteDeps): (c: ApiContext) => Promise<Response> {
  return async (c) => {
    const started = d.now();
    d.slots.refuseUnlessOpen();
    const req = parseGenerateRequest(await readJsonBody(c.req.raw));
    // the client's signal: a client that goes away stops its generation (deno.json: no-legacy-abort)
    const slot = d.slots.take({ signal: c.req.raw.signal });
    const { signal, release } = slot;
    try {
      await d.generator.prepare?.({ signal });
      // The gateway's chat turns go through the model's own chat template when it has one.
      const info = d.generator.info();
      const chat = req.messages !== undefined &&
        (Boolean(info.chatTemplate) || req.inputs === undefined);
      const prompt = chat ? renderChatPrompt(req.messages!, info) : req.inputs!;
      const templated = chat && Boolean(info.chatTemplate);
      const { params } = fitContext(d.generator, prompt, req.params, "parameters.max_new_tokens", d.log, {
        templated,
      });
      const run = startRun(d.generator, prompt, params, req.stop, { signal, templated });
      if (!req.stream) {
        await completeRun(run, release);
        countTokens(d.metrics, run.state.tokens);
        return jsonResponse(200, {
          generated_text: run.state.text,
          num_tokens: run.state.tokens,
          latency_ms: Math.max(0, d.now() - started),
        });
      }
      const first = await firstPiece(run, release);
      return sseStream(c, async (w) => {
        w.signal.addEventListener("abort", () => slot.abort(w.signal.reason), { once: true });
        try {
          if (first !== null) {
            w.send({ token: first });
            for await (const piece of run.pieces) w.send({ token: piece });
          }
          w.sendRaw("[DONE]");
        } catch (err) {
          w.send(streamErrorEvent(failure(err, d.timeoutMs, d.log, "generate"), "generate"));
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
