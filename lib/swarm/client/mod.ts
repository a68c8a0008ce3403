/**
 * The swarm client: routing, multi-server inference sessions with failover and replay, and
 * generation (sampling, stop conditions, streaming, chat session reuse).
 *
 * @example Generate through a swarm (run with `deno run -A example.ts`)
 * ```ts
 * import { connectSwarm } from "./mod.ts";
 *
 * const client = await connectSwarm({
 *   model: "bigscience/bloom-560m",
 *   initialPeers: ["/ip4/127.0.0.1/tcp/31337/p2p/12D3KooW..."],
 * });
 * try {
 *   const generation = client.generate("A cat sat on", { maxNewTokens: 16, temperature: 0 });
 *   for await (const token of generation) console.log(token.text);
 *   console.log(generation.result); // { reason, text, tokenIds, tokensPerSecond, ... }
 *
 *   const chat = client.chat({ maxLength: 512 }); // turns share one session: no recomputed prefix
 *   await chat.send("Hello!", { maxNewTokens: 32 }).complete();
 *   await chat.send(" And then?", { maxNewTokens: 32 }).complete();
 *   await chat.close();
 * } finally {
 *   await client.stop();
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
export { ProtocolSpanTransport, type ProtocolSpanTransportOptions } from "./protocol_span_transport.ts";
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
