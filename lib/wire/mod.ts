export * from "./wire_limits.ts";
export * from "./tensor_codec.ts";
export * from "./error_codes.ts";
export * from "./protocol_messages.ts";
export * from "./swarm_record.ts";
export * from "./frame_codec.ts";
export * from "./length_prefix.ts";
