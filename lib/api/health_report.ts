/**
 * What `GET /health` answers (docs/protocol.md, "Gateway HTTP API"). The gateway counts any 2xx
 * as "online" and then sends `/api/v1/generate`, so the answer is 200 `{"status": "ok", "mode":
 * "pipeline", …}` only while this node can generate: its model is ready and the swarm covers every block. Otherwise it
 * is 503 with `status` `loading` (the node starts: the phase as `reason`), `degraded` (online, but
 * the swarm misses blocks) or `stopping`, and a `reason`. Both carry `model`, `mode` and what the
 * node knows about itself (address, peer id, span, swarm coverage, uptime, in-flight generations,
 * the node's extra fields). New conditions go into `unavailable()`; new fields into `extra`.
 * @module
 */
import type { GeneratorInfo, NodeStatus } from "./types.ts";

export interface HealthInputs {
  readonly info: GeneratorInfo;
  readonly status: NodeStatus;
  readonly draining: boolean;
  readonly uptimeSeconds: number;
  readonly inFlight: number;
}

export interface HealthReport {
  readonly httpStatus: number;
  readonly body: Record<string, unknown>;
}

export type HealthStatus = "ok" | "loading" | "degraded" | "stopping";

/** Why this node cannot generate now, or undefined when it can. */
export function unavailable(
  h: HealthInputs,
): { status: Exclude<HealthStatus, "ok">; reason: string } | undefined {
  if (h.draining) return { status: "stopping", reason: "the node is shutting down" };
  if (!h.info.ready) {
    const phase = h.status.starting;
    return {
      status: "loading",
      reason: phase ? `the node is starting: ${phase}` : "the model is still loading",
    };
  }
  const c = h.status.coverage;
  if (c && !c.complete) {
    return {
      status: "degraded",
      reason:
        `the swarm covers ${c.coveredBlocks} of ${c.totalBlocks} blocks of the model (${c.servers} servers online); ` +
        "a generation needs every block",
    };
  }
  return undefined;
}

export function healthReport(h: HealthInputs): HealthReport {
  const st = h.status;
  const down = unavailable(h);
  const out: Record<string, unknown> = {
    status: down?.status ?? "ok",
    model: h.info.model,
    mode: "pipeline",
  };
  if (down) out.reason = down.reason;
  if (st.address) out.address = st.address;
  if (st.peerId) out.peer_id = st.peerId;
  if (st.span) out.span = { start: st.span.start, end: st.span.end };
  if (st.state) out.state = st.state;
  out.uptime_seconds = h.uptimeSeconds;
  out.in_flight = h.inFlight;
  if (st.coverage) {
    out.swarm = {
      total_blocks: st.coverage.totalBlocks,
      covered_blocks: st.coverage.coveredBlocks,
      complete: st.coverage.complete,
      servers: st.coverage.servers,
    };
  }
  if (st.extra) { for (const [k, v] of Object.entries(st.extra)) if (!(k in out)) out[k] = v; }
  return { httpStatus: down ? 503 : 200, body: out };
}
