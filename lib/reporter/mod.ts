export * from "./report_body.ts";
export * from "./oracle_reporter.ts";
export * from "./node_registration.ts";
export * from "./oracle_agent_view.ts";
export * from "./report_counters.ts";
export * from "./report_state.ts";
