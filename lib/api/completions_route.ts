/**
 * `POST /v1/completions`, OpenAI's legacy text completion: the prompt as it is (no chat template),
 * `text_completion` with `usage`, or `text_completion` chunks ending with `data: [DONE]`
 * (`openai_generation.ts`). `echo` starts the text with the prompt.
 * @module
 */
import type { ApiContext, RouteDeps } from "./api_env.ts";
import { checkModel } from "./chat_route.ts";
import { openAiGeneration } from "./openai_generation.ts";
import { parseCompletionRequest } from "./parse_completion_request.ts";
import { readJsonBody } from "./read_json_body.ts";

export function completionsRoute(d: RouteDeps): (c: ApiContext) => Promise<Response> {
  return async (c) => {
    d.slots.refuseUnlessOpen();
    const req = parseCompletionRequest(await readJsonBody(c.req.raw, '{"prompt": "Once upon a time"}'));
    checkModel(d, req.model);
    const slot = d.slots.take({ signal: c.req.raw.signal });
    try {
      await d.generator.prepare?.({ signal: slot.signal });
      return await openAiGeneration(d, c, {
        route: "completions",
        idPrefix: "cmpl",
        object: "text_completion",
        chunkObject: "text_completion",
        prompt: req.prompt,
        templated: false,
        params: req.params,
        maxField: "max_tokens",
        stop: req.stop,
        stream: req.stream,
        includeUsage: req.includeUsage,
        choice: (text) => ({ text: req.echo ? req.prompt + text : text }),
        chunkChoices: (piece) => [{ text: piece }],
        closingChoices: () => [{ text: "" }],
        // a stream echoes the prompt in a chunk of its own, before the first piece
        ...(req.echo ? { opening: { text: req.prompt } } : {}),
      }, slot);
    } catch (err) {
      slot.release();
      throw err;
    }
  };
}
