/**
 * `modelSource(config)`: the checkpoint coordinates (model, revision, hub endpoint, token, cache
 * home) of a resolved config, as the runtime's `ModelSource`.
 * @module
 */
import type { Config } from "../config/types.ts";
import type { ModelSource } from "./types.ts";

export type ModelSourceConfig = Pick<Config, "model" | "revision" | "hfEndpoint" | "hfToken" | "hfHome">;

export function modelSource(config: ModelSourceConfig): ModelSource {
  return {
    model: config.model,
    revision: config.revision,
    hfEndpoint: config.hfEndpoint,
    hfToken: config.hfToken,
    hfHome: config.hfHome,
  };
}
