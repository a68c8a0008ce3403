/**
 * Test doubles and helpers, for tests and scripts only: `FakeBackend` (a `BlockRuntime` with cheap
 * deterministic math), `FakeSwarm` (in-process span servers with failure injection), `FakeHead` and
 * `FakeTokenizer`, `FakeGenerator` (the API's generator), signed test records, and direct-path
 * helpers. No production module imports this folder and the library's `mod.ts` does not export it
 * (tests/house_test.ts checks both).
 * @module
 */
export * from "./fake_backend.ts";
export * from "./fake_swarm.ts";
export * from "./fake_head.ts";
export * from "./fake_generator.ts";
export * from "./test_records.ts";
export * from "./direct_test_helpers.ts";
export * from "./stalled_channel.ts";
