/**
 * Resolves a model reference (hub repo id + revision, or a local directory) to local files:
 * config.json, generation_config.json, the safetensors index and only the shards holding the
 * requested blocks and/or the client head; the tokenizer files on request.
 * @module
 */
import { ConfigError, RuntimeError } from "../errors.ts";
import { isRepoRelativePath } from "./repo_path.ts";
import type { Logger } from "../util/logger.ts";
import { silentLogger } from "../util/logger.ts";
import { blockTensorNames } from "./block_graph.ts";
import { headTensorNames } from "./head_graph.ts";
import type { DownloadProgress } from "./hub_download.ts";
import { hubFile } from "./hub_download.ts";
import type { ModelConfig } from "./model_config.ts";
import { parseModelConfig } from "./model_config.ts";
import { SafetensorsFile } from "./safetensors.ts";
import type { ModelSource } from "./types.ts";
import type { EngineLoadRequest } from "./engine_types.ts";

export interface ResolveOptions {
  /** Blocks whose shards are needed, [start, end). */
  start?: number;
  end?: number;
  /** The head's shards (embeddings, final norm, LM head) are needed. */
  head?: boolean;
  /** Fetch tokenizer.json and tokenizer_config.json too. */
  tokenizer?: boolean;
  logger?: Logger;
  signal?: AbortSignal;
  onProgress?: (p: DownloadProgress) => void;
}

export interface ResolvedCheckpoint {
  readonly modelId: string;
  readonly revision?: string;
  readonly local: boolean;
  readonly config: Record<string, unknown>;
  readonly generation: Record<string, unknown>;
  readonly modelConfig: ModelConfig;
  /** Tensor name → shard file name. */
  readonly weightMap: Record<string, string>;
  /** Fetched shard file name → local path (only the needed ones). */
  readonly paths: Record<string, string>;
  readonly blockPrefix: string;
  readonly headPrefix: string;
  readonly tokenizerPath?: string;
  readonly tokenizerConfigPath?: string;
}

/** What the runtime Worker needs of a resolved checkpoint to build its graphs (see `EngineLoadRequest`). */
export function engineSource(
  ck: ResolvedCheckpoint,
): Pick<EngineLoadRequest, "config" | "generation" | "weightMap" | "paths" | "blockPrefix" | "headPrefix"> {
  return {
    config: ck.config,
    generation: ck.generation,
    weightMap: ck.weightMap,
    paths: ck.paths,
    blockPrefix: ck.blockPrefix,
    headPrefix: ck.headPrefix,
  };
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await Deno.stat(p)).isDirectory;
  } catch {
    return false;
  }
}

/** A function that returns the local path of a checkpoint file (undefined when optional and absent). */
type Fetcher = (file: string, optional: boolean) => Promise<string | undefined>;

function fetcher(source: ModelSource, local: boolean, o: ResolveOptions): Fetcher {
  if (local) {
    return async (file, optional) => {
      const p = `${source.model.replace(/\/+$/, "")}/${file}`;
      try {
        await Deno.stat(p);
        return p;
      } catch {
        if (optional) return undefined;
        throw new RuntimeError("BAD_CHECKPOINT", `${p} does not exist`, {
          hint:
            "a local model directory needs config.json and model.safetensors (or an index and its shards)",
          details: { file, dir: source.model },
        });
      }
    };
  }
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(source.model)) {
    throw new RuntimeError(
      "BAD_CHECKPOINT",
      `model ${JSON.stringify(source.model)} is neither a local directory nor a hub repo id`,
      {
        hint: "pass a hub id such as bigscience/bloom-560m or an existing directory",
      },
    );
  }
  const hfHome = source.hfHome;
  if (!hfHome) {
    throw new RuntimeError("BAD_CHECKPOINT", `no HF cache directory given for hub model ${source.model}`, {
      hint: "pass hfHome (HF_HOME, default ~/.cache/huggingface) from the resolved config",
    });
  }
  return (file, optional) =>
    hubFile({
      repo: source.model,
      file,
      revision: source.revision,
      endpoint: source.hfEndpoint,
      token: source.hfToken,
      hfHome,
      signal: o.signal,
      logger: o.logger,
      onProgress: o.onProgress,
      optional,
    });
}

/** The local path of one file of a model (downloaded when the model is on the hub). */
export async function modelFile(
  source: ModelSource,
  file: string,
  optional: boolean,
  o: ResolveOptions = {},
): Promise<string | undefined> {
  return await fetcher(source, await isDir(source.model), o)(file, optional);
}

/** A checkpoint's JSON file (config, generation config, index, tokenizer files) as an object. */
export async function readJsonObject(path: string, maxBytes = 16 << 20): Promise<Record<string, unknown>> {
  const bad = (why: string, cause?: unknown) =>
    new RuntimeError("BAD_CHECKPOINT", `${path} ${why}`, {
      hint:
        "delete the file from the cache to download it again; if it comes back so, the checkpoint is broken",
      cause,
    });
  const size = (await Deno.stat(path)).size;
  if (size > maxBytes) throw bad(`is ${size} bytes, more than such a file can be (${maxBytes})`);
  let value: unknown;
  try {
    value = JSON.parse(await Deno.readTextFile(path));
  } catch (cause) {
    throw bad(`is not valid JSON: ${(cause as Error).message}`, cause);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw bad("is not a JSON object");
  return value as Record<string, unknown>;
}

const readJson = (path: string) => readJsonObject(path);

/** Resolves and fetches what `o` asks for. */
export async function resolveCheckpoint(
  source: ModelSource,
  o: ResolveOptions = {},
): Promise<ResolvedCheckpoint> {
  const log = o.logger ?? silentLogger;
  const local = await isDir(source.model);
  if (!local && /^(\/|\.\.?\/|~)/.test(source.model)) {
    // a path, not a hub repo id (org/name): asking the hub for it would only say "not found"
    throw new ConfigError("CONFIG_INVALID", `MODEL_NAME ${source.model}: no such checkpoint directory`, {
      hint:
        "give the directory of a checkpoint (with its config.json; a full path, ~ is not expanded here), or a hub repo id such as org/name",
    });
  }
  const get = fetcher(source, local, o);
  const config = await readJson((await get("config.json", false))!);
  const genPath = await get("generation_config.json", true);
  const generation = genPath ? await readJson(genPath) : {};
  const modelConfig = parseModelConfig(config, generation);

  let weightMap: Record<string, string>;
  const indexPath = await get("model.safetensors.index.json", true);
  const paths: Record<string, string> = {};
  if (indexPath) {
    const index = await readJson(indexPath);
    const wm = index.weight_map;
    if (!wm || typeof wm !== "object") {
      throw new RuntimeError("BAD_CHECKPOINT", `${indexPath} has no weight_map`, {
        hint: "the index file is malformed",
      });
    }
    weightMap = wm as Record<string, string>;
    // the index comes from the repo: its file names must stay inside it (lib/runtime/repo_path.ts)
    for (const [tensor, file] of Object.entries(weightMap)) {
      if (typeof file === "string" && isRepoRelativePath(file)) continue;
      throw new RuntimeError(
        "BAD_CHECKPOINT",
        `${indexPath} maps ${tensor} to ${JSON.stringify(file)}, not a file inside the checkpoint`,
        {
          hint:
            "the index names a file outside its repo (a `..`, an absolute path or a backslash): do not serve it",
          details: { tensor, file },
        },
      );
    }
  } else {
    const single = await get("model.safetensors", true);
    if (!single) {
      throw new RuntimeError(
        "BAD_CHECKPOINT",
        `${source.model} has neither model.safetensors.index.json nor model.safetensors`,
        {
          hint:
            "only safetensors checkpoints are supported (convert pytorch_model.bin with transformers' save_pretrained)",
        },
      );
    }
    const f = await SafetensorsFile.open(single);
    weightMap = Object.fromEntries([...f.tensors.keys()].map((k) => [k, "model.safetensors"]));
    f.close();
    paths["model.safetensors"] = single;
  }

  const names = Object.keys(weightMap);
  const first = o.start ?? 0;
  const candidates = modelConfig.modelType === "bloom"
    ? ["h.", "transformer.h."]
    : ["model.layers.", "layers."];
  const blockPrefix = candidates.find((c) => names.some((n) => n.startsWith(`${c}${first}.`)));
  if (!blockPrefix) {
    throw new RuntimeError(
      "BAD_CHECKPOINT",
      `no tensors of block ${first} (tried prefixes ${candidates.join(", ")}) in ${source.model}`,
      {
        hint: "the checkpoint's tensor names are not those of a transformers " + modelConfig.sourceType +
          " model",
      },
    );
  }
  // the config's block count is what spans are chosen from: it must be the checkpoint's
  const layers = modelConfig.numLayers;
  const hasBlock = (i: number) => names.some((n) => n.startsWith(`${blockPrefix}${i}.`));
  if (!hasBlock(layers - 1) || hasBlock(layers)) {
    throw new RuntimeError(
      "BAD_CHECKPOINT",
      `config.json of ${source.model} says ${layers} blocks, its weights ${
        hasBlock(layers) ? "have more" : `have no block ${layers - 1}`
      }`,
      { hint: "the config and the weights are of different models", details: { numLayers: layers } },
    );
  }
  const headPrefix = modelConfig.modelType === "bloom"
    ? (blockPrefix.startsWith("transformer.") ? "transformer." : "")
    : "model.";

  const needed = new Set<string>();
  if (o.start !== undefined && o.end !== undefined) {
    if (
      !(Number.isInteger(o.start) && Number.isInteger(o.end) && 0 <= o.start && o.start < o.end &&
        o.end <= modelConfig.numLayers)
    ) {
      throw new RuntimeError(
        "BAD_SPAN",
        `blocks [${o.start}, ${o.end}) are not inside the model's ${modelConfig.numLayers} blocks`,
        {
          hint: `pick 0 ≤ start < end ≤ ${modelConfig.numLayers}`,
          details: { start: o.start, end: o.end, numBlocks: modelConfig.numLayers },
        },
      );
    }
    for (let i = o.start; i < o.end; i++) {
      for (const n of blockTensorNames(modelConfig)) {
        const full = `${blockPrefix}${i}.${n}`;
        const f = weightMap[full];
        if (!f) {
          throw new RuntimeError("BAD_CHECKPOINT", `tensor ${full} is not in the checkpoint index`, {
            hint: "the checkpoint does not match its config.json",
          });
        }
        needed.add(f);
      }
    }
  }
  if (o.head) {
    for (const n of Object.values(headTensorNames(modelConfig, headPrefix, (x) => x in weightMap))) {
      const f = weightMap[n];
      if (!f) {
        throw new RuntimeError("BAD_CHECKPOINT", `head tensor ${n} is not in the checkpoint`, {
          hint: "the checkpoint does not match its config.json",
        });
      }
      needed.add(f);
    }
  }
  for (const f of [...needed].sort()) {
    if (!paths[f]) {
      log.debug("fetching shard", { file: f });
      paths[f] = (await get(f, false))!;
    }
  }
  let tokenizerPath: string | undefined, tokenizerConfigPath: string | undefined;
  if (o.tokenizer) {
    tokenizerPath = await get("tokenizer.json", true);
    if (!tokenizerPath) {
      throw new RuntimeError("BAD_CHECKPOINT", `${source.model} has no tokenizer.json`, {
        hint: "only fast tokenizers (tokenizer.json) are supported",
      });
    }
    tokenizerConfigPath = await get("tokenizer_config.json", true);
  }
  return {
    modelId: source.model,
    revision: local ? undefined : source.revision ?? "main",
    local,
    config,
    generation,
    modelConfig,
    weightMap,
    paths,
    blockPrefix,
    headPrefix,
    tokenizerPath,
    tokenizerConfigPath,
  };
}
