export * from "./types.ts";
export * from "./schema.ts";
export * from "./tiers.ts";
export * from "./resolve_config.ts";
