/** The plumise release version (kept equal to deno.json "version" by a test). */
export const VERSION = "0.1.0";
/** Swarm protocol generation announced in records. */
export const PROTOCOL_VERSION = "1.0.0";
