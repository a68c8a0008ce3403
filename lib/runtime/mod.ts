/**
 * The block runtime: BLOOM and Llama blocks from Hugging Face checkpoints on onnxruntime, driven
 * through its C API by Deno FFI in the runtime Worker (importing this module loads no native code).
 * @module
 */
export * from "./types.ts";
export { createBlockRuntime, OnnxBlockRuntime, type OnnxBlockRuntimeOptions } from "./onnx_block_runtime.ts";
export { type ClientHeadOptions, createClientHead, OnnxClientHead } from "./onnx_client_head.ts";
export { loadTokenizer, tokenizerFromJson } from "./hf_tokenizer.ts";
export { resolveCheckpoint, type ResolvedCheckpoint } from "./checkpoint.ts";
export { cachedFile, type DownloadProgress, hubFile, repoCacheDir } from "./hub_download.ts";
export { validateHidden } from "./validate_hidden.ts";
