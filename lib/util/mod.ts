export * from "./logger.ts";
export * from "./abort.ts";
export * from "./backoff.ts";
export * from "./metrics.ts";
export * from "./cpu_list.ts";
export * from "./stop_strings.ts";
export * from "./mutex.ts";
export * from "./with_defaults.ts";
