/**
 * `POST /v1/chat/completions`, the OpenAI adapter: messages rendered with the checkpoint's chat
 * template, `chat.completion` with `usage`, or `chat.completion.chunk` events (role, content
 * deltas, finish, optional usage) ending with `data: [DONE]` (`openai_generation.ts`). With `tools`
 * the template lists them and the reply's calls come back as `tool_calls` (`tool_calls.ts`).
 * @module
 */
import { ApiError } from "../errors.ts";
import type { ApiContext, RouteDeps } from "./api_env.ts";
import { openAiGeneration } from "./openai_generation.ts";
import { parseChatRequest } from "./parse_chat_request.ts";
import { readJsonBody } from "./read_json_body.ts";
import { renderChatPrompt } from "./render_chat_prompt.ts";
import { extractToolCalls, ToolCallScanner } from "./tool_calls.ts";

export function chatRoute(d: RouteDeps): (c: ApiContext) => Promise<Response> {
  return async (c) => {
    d.slots.refuseUnlessOpen();
    const req = parseChatRequest(
      await readJsonBody(c.req.raw, '{"messages": [{"role": "user", "content": "Hello"}]}'),
    );
    checkModel(d, req.model);
    // the client's signal: a client that goes away stops its generation (deno.json: no-legacy-abort)
    const slot = d.slots.take({ signal: c.req.raw.signal });
    try {
      await d.generator.prepare?.({ signal: slot.signal });
      const info = d.generator.info();
      const tools = req.tools;
      // the calls come back in Hermes' <tool_call> blocks: a template that asks for another form
      // (Llama 3.1's, Mistral's) would have them read as plain text
      if (tools && !info.chatTemplate?.includes("<tool_call>")) {
        throw new ApiError(
          400,
          "UNSUPPORTED",
          `tools are not supported by ${info.model}: its chat template does not ask for <tool_call> blocks`,
          {
            hint: "leave tools out, or serve a model whose chat template lists tools (Qwen3, Qwen2.5)",
            details: { param: "tools" },
          },
        );
      }
      const scanner = tools ? new ToolCallScanner() : undefined;
      return await openAiGeneration(d, c, {
        route: "chat",
        idPrefix: "chatcmpl",
        object: "chat.completion",
        chunkObject: "chat.completion.chunk",
        prompt: renderChatPrompt(req.messages, info, { ...req.templateKwargs, ...(tools ? { tools } : {}) }),
        // the checkpoint's template writes its special tokens; the plain fallback is a raw prompt
        templated: Boolean(info.chatTemplate),
        params: req.params,
        maxField: "max_tokens",
        stop: req.stop,
        stream: req.stream,
        includeUsage: req.includeUsage,
        choice: (text) => {
          const { content, calls } = tools ? extractToolCalls(text) : { content: text, calls: [] };
          if (!calls.length) return { message: { role: "assistant", content: text } };
          return {
            message: { role: "assistant", content: content || null, tool_calls: calls },
            finish_reason: "tool_calls",
          };
        },
        chunkChoices: (piece) => {
          const content = scanner ? scanner.push(piece) : piece;
          return content ? [{ delta: { content } }] : [];
        },
        closingChoices: () => {
          const { content, calls } = scanner?.finish() ?? { content: "", calls: [] };
          return [
            ...(content ? [{ delta: { content } }] : []),
            ...calls.map((call, index) => ({ delta: { tool_calls: [{ index, ...call }] } })),
            calls.length ? { delta: {}, finish_reason: "tool_calls" } : { delta: {} },
          ];
        },
        opening: { delta: { role: "assistant", content: "" } },
      }, slot);
    } catch (err) {
      slot.release();
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
