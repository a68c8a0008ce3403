/**
 * What `GET /health` answers (PLUMISE-WIRE §3): `status`, `model`, `mode: "pipeline"` (the gateway
 * then uses `/api/v1/generate`), and what the node knows about itself (address, peer id, span,
 * swarm coverage, uptime, in-flight generations, extra fields of the node).
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

export function healthReport(h: HealthInputs): HealthReport {
  const st = h.status;
  const out: Record<string, unknown> = {
    status: h.info.ready && !h.draining ? "ok" : h.draining ? "stopping" : "loading",
    model: h.info.model,
    mode: "pipeline",
  };
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
  return { httpStatus: 200, body: out };
}
