import assert from "node:assert/strict";
import {
  ApiError,
  causeChain,
  ConfigError,
  HubError,
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
  assert.equal(new ConfigError("CONFIG_INVALID", "y").exitCode, 2);
  // a model that is not on the hub is the configuration's: exit 2, not restarted by the service
  assert.equal(new HubError("HUB_NOT_FOUND", "no such repo").exitCode, 2);
  assert.equal(new HubError("HUB_UNREACHABLE", "down").exitCode, 1);
  assert.equal(new ApiError(429, "TOO_MANY_REQUESTS", "too many").status, 429);
  assert.deepEqual(causeChain(e), [
    "RuntimeError [CACHE_FULL]: cache full: 4096 tokens asked, 1024 left",
    "Error: socket closed",
  ]);
  assert.equal(e.toJSON().code, "CACHE_FULL");
});

Deno.test("registered secrets are redacted with and without 0x", () => {
  const key = "0x" + "5a".repeat(32);
  registerSecret(key);
  const e = new PlumiseError("INTERNAL", `bad ${key} and ${key.slice(2)}`, { hint: `not ${key}` });
  assert.equal(e.message, "bad [redacted] and [redacted]");
  assert.equal(e.hint, "not [redacted]");
  assert.equal(redact("tx 0x" + "11".repeat(32)), "tx 0x" + "11".repeat(32), "tx hashes stay visible");
});

Deno.test("short secrets are redacted where they stand as a word, not inside longer words", () => {
  registerSecret("Qz7");
  registerSecret("Qx");
  assert.equal(redact("password Qz7 was wrong"), "password [redacted] was wrong");
  assert.equal(redact("pw=Qz7;"), "pw=[redacted];");
  assert.equal(redact("Qz7"), "[redacted]");
  assert.equal(redact("xQz7y and Qz70"), "xQz7y and Qz70", "inside a longer word it is left alone");
  assert.equal(redact("a Qx b, Qxs"), "a [redacted] b, Qxs");
  const e = new PlumiseError("KEYSTORE_BAD_PASSWORD", "keystore password Qz7 rejected", { hint: "not Qz7" });
  assert.equal(e.message, "keystore password [redacted] rejected");
  assert.equal(e.hint, "not [redacted]");
});

Deno.test("a secret may carry its own replacement (e.g. a URL shown without its credentials)", () => {
  registerSecret("https://alice:pw@rpc.example/x?key=v", { replacement: "https://[redacted]@rpc.example/x" });
  assert.equal(
    redact("GET https://alice:pw@rpc.example/x?key=v failed"),
    "GET https://[redacted]@rpc.example/x failed",
  );
});
