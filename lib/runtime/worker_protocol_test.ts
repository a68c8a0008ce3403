import assert from "node:assert/strict";
import { HubError, RuntimeError } from "../errors.ts";
import { deserializeError, priorityOf, serializeError } from "./worker_protocol.ts";

Deno.test("worker protocol: forward requests queue behind interactive work; errors keep code, hint and details", () => {
  assert.equal(priorityOf("step"), 0);
  assert.equal(priorityOf("open"), 0);
  assert.equal(priorityOf("forward"), 1);
  const e = deserializeError(
    serializeError(
      new RuntimeError("CACHE_FULL", "full: 5 left", { hint: "go elsewhere", details: { left: 5 } }),
    ),
  );
  assert.ok(e instanceof RuntimeError);
  assert.deepEqual([e.code, e.message, e.hint, e.details], ["CACHE_FULL", "full: 5 left", "go elsewhere", {
    left: 5,
  }]);
  assert.equal(deserializeError(serializeError(new HubError("HUB_NOT_FOUND", "x"))).code, "HUB_NOT_FOUND");
  const plain = deserializeError(serializeError(new TypeError("boom")));
  assert.equal(plain.code, "ENGINE_FAILED");
  assert.match(plain.message, /boom/);
});
