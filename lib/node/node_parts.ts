/**
 * Builds the real parts of a node from the resolved config: runtime (onnxruntime blocks + client
 * head + tokenizer), swarm (libp2p server + table + client generation), chain (wallet, preflight,
 * registration, heartbeat, rewards) and reporter (signed Oracle reports fed by the shared metrics).
 * Loaded lazily by node.ts so `--help`, `status` and most tests never load native addons.
 * @module
 */
import { UnavailableError } from "../errors.ts";
import type { NodeParts, NodePartsContext } from "./types.ts";

/** Whether this build can compose the full node (the e2e test runs only then). */
export const FULL_NODE_PARTS_READY = false;

export function createNodeParts(_ctx: NodePartsContext): Promise<NodeParts> {
  return Promise.reject(
    new UnavailableError("NOT_AVAILABLE", "the full node cannot be composed in this build yet", {
      hint:
        "the swarm server, generation client, chain agent and reporter are being built; use `plumise serve --offline` when available",
    }),
  );
}
