import assert from "node:assert/strict";
import { resolveConfig } from "../config/resolve_config.ts";
import { modelSource } from "./model_source.ts";

Deno.test("modelSource takes exactly the checkpoint coordinates of a config", () => {
  const { config } = resolveConfig({
    env: {
      HOME: "/h",
      MODEL_NAME: "org/m",
      MODEL_REVISION: "v2",
      HF_ENDPOINT: "http://127.0.0.1:9",
      HF_TOKEN: "hf_tok_123",
    },
  });
  assert.deepEqual(modelSource(config), {
    model: "org/m",
    revision: "v2",
    hfEndpoint: "http://127.0.0.1:9",
    hfToken: "hf_tok_123",
    hfHome: "/h/.cache/huggingface",
  });
});
