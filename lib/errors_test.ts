import assert from "node:assert/strict";
import {
  ApiError,
  causeChain,
  ConfigError,
  PlumiseError,
  redact,
  registerSecret,
  RuntimeError,
} from "./errors.ts";

Deno.test("PlumiseError carries code, hint, cause and exit code", () => {
  const cause = new Error("socket closed");
  const e = new RuntimeError("CACHE_FULL", "cache full: 4096 tokens asked, 1024 left", {
    hint: "shorten the session",
    cause,
  });
  assert.ok(e instanceof PlumiseError);
  assert.equal(e.name, "RuntimeError");
  assert.equal(e.code, "CACHE_FULL");
  assert.equal(e.hint, "shorten the session");
  assert.equal(e.exitCode, 1);
  assert.equal(new ConfigError("X", "y").exitCode, 2);
  assert.equal(new ApiError(429, "BUSY", "too many").status, 429);
  assert.deepEqual(causeChain(e), [
    "RuntimeError [CACHE_FULL]: cache full: 4096 tokens asked, 1024 left",
    "Error: socket closed",
  ]);
  assert.equal(e.toJSON().code, "CACHE_FULL");
});

Deno.test("registered secrets are redacted with and without 0x", () => {
  const key = "0x" + "5a".repeat(32);
  registerSecret(key);
  const e = new PlumiseError("X", `bad ${key} and ${key.slice(2)}`, { hint: `not ${key}` });
  assert.equal(e.message, "bad [redacted] and [redacted]");
  assert.equal(e.hint, "not [redacted]");
  assert.equal(redact("tx 0x" + "11".repeat(32)), "tx 0x" + "11".repeat(32), "tx hashes stay visible");
});
