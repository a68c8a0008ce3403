/**
 * The API's read-only routes: `GET /health` (lib/api/health_report.ts), `GET /metrics`
 * (Prometheus text), `GET /v1/models` and `GET /v1/models/{id}` (OpenAI model cards).
 * @module
 */
import type { ApiContext, RouteDeps } from "./api_env.ts";
import { jsonResponse } from "./api_env.ts";
import { checkModel } from "./chat_route.ts";
import { healthReport } from "./health_report.ts";
import type { NodeStatusSource } from "./types.ts";

type Handler = (c: ApiContext) => Response;

export function healthRoute(d: RouteDeps, source: NodeStatusSource | undefined): Handler {
  return () => {
    const report = healthReport({
      info: d.generator.info(),
      status: source?.status() ?? {},
      draining: d.slots.draining,
      uptimeSeconds: d.metrics.snapshot().uptimeSeconds,
      inFlight: d.slots.inFlight,
    });
    return jsonResponse(
      report.httpStatus,
      report.body,
      report.httpStatus === 503 ? { "retry-after": "1" } : {},
    );
  };
}

export function metricsRoute(d: RouteDeps): Handler {
  return () =>
    new Response(d.metrics.renderPrometheus(), {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    });
}

export function modelsRoute(d: RouteDeps): Handler {
  return () => jsonResponse(200, { object: "list", data: [modelCard(d)] });
}

export function modelRoute(d: RouteDeps): Handler {
  return (c) => {
    checkModel(d, c.req.param("id"));
    return jsonResponse(200, modelCard(d));
  };
}

function modelCard(d: RouteDeps): Record<string, unknown> {
  const info = d.generator.info();
  return {
    id: info.model,
    object: "model",
    created: info.createdAt ?? Math.floor(d.now() / 1000),
    owned_by: "plumise",
  };
}
