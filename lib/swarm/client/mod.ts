/**
 * The swarm client: routing, multi-server inference sessions with failover and replay, and
 * generation (sampling, stop conditions, streaming, chat session reuse).
 *
 * @example Generate through a swarm (imports relative to lib/swarm/client/)
 * ```ts
 * import { createClientHead, loadTokenizer } from "../../runtime/mod.ts";
 * import { connectSwarm } from "./mod.ts";
 *
 * const model = "bigscience/bloom-560m"; // or a local checkpoint directory
 * const head = createClientHead({ model }); // embeddings + final norm + LM head, run locally
 * await head.start();
 * const client = await connectSwarm({
 *   model,
 *   head,
 *   tokenizer: await loadTokenizer({ model }),
 *   initialPeers: ["/ip4/127.0.0.1/tcp/31330/p2p/12D3KooW…"], // any server of the swarm
 * });
 * try {
 *   // one generation: streamed tokens, then the result
 *   const generation = client.generate("A cat sat on", { maxNewTokens: 16 }); // greedy
 *   for await (const token of generation) await Deno.stdout.write(new TextEncoder().encode(token.text));
 *   console.log(generation.result); // { reason, text, tokenIds, promptTokens, tokensPerSecond, ... }
 *
 *   // a chat: its turns share one session, so the prefix is never recomputed
 *   const chat = client.chat({ maxLength: 512 });
 *   await chat.send("Hello!", { maxNewTokens: 32, temperature: 0.8, topP: 0.9, seed: 1 }).complete();
 *   const reply = await chat.send(" And then?", { maxNewTokens: 32, stopStrings: ["\n"] }).complete();
 *   console.log(reply.text);
 *   await chat.close();
 *
 *   // lower level: an inference session over all blocks, hidden states in and out
 *   const session = client.openSession({ maxLength: 64 });
 *   const hidden = await head.embed({ data: Int32Array.from([1, 2, 3]), shape: [1, 3] });
 *   const out = await session.step(hidden); // [1, 3, H], with failover and replay inside
 *   console.log(out.shape, session.route.map((s) => `${s.start}:${s.end}`));
 *   await session.close();
 * } finally {
 *   await client.stop();
 *   await head.stop();
 * }
 * ```
 * @module
 */
export * from "./types.ts";
export {
  ConnectedSwarmClient,
  connectSwarm,
  type ConnectSwarmOptions,
  dialAddrs,
  PulledSwarmTable,
} from "./connect_swarm.ts";
export {
  ProtocolSpanTransport,
  type ProtocolSpanTransportOptions,
  type RemoteStepTiming,
} from "./protocol_span_transport.ts";
export { BanList, type BanListOptions } from "./ban_list.ts";
export { PingAggregator, type PingAggregatorOptions } from "./ping_aggregator.ts";
export {
  DEFAULT_ROUTE_COSTS,
  describeRoute,
  type InferencePlan,
  type InferenceRouteOptions,
  missingBlocks,
  planInference,
  type RouteCosts,
  routeInference,
  type ServerFilter,
  usableServers,
} from "./route_inference.ts";
export { type ForwardRouteOptions, routeForward } from "./route_forward.ts";
export { type SamplingOptions, TokenSampler, validateSamplingOptions } from "./token_sampler.ts";
export { StopCondition, type StopOptions, type StopReason } from "./stop_condition.ts";
export {
  type SessionStats,
  type SessionStepOptions,
  SwarmInferenceSession,
  type SwarmInferenceSessionOptions,
} from "./swarm_inference_session.ts";
export {
  type ConversationState,
  type GeneratedToken,
  type GenerateOptions,
  generateText,
  Generation,
  type GenerationDeps,
  type GenerationResult,
  newConversation,
  type StepSession,
} from "./generate_text.ts";
export {
  type ClientGenerateOptions,
  type OpenSessionOptions,
  SwarmChat,
  SwarmClient,
  type SwarmClientOptions,
} from "./swarm_client.ts";
