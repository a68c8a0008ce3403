/**
 * Test helpers over `[B, T, H]` hidden states: tokens `[from, to)` of every row, and
 * concatenation along the token axis (to feed a sequence step by step and compare with one pass).
 * The swarm client's own helpers (lib/swarm/client/hidden_ops.ts), under the names the runtime's
 * tests use.
 * @module
 */
export { concatTokens as concat, sliceTokens as slice } from "../../lib/swarm/client/hidden_ops.ts";
