import assert from "node:assert/strict";
import { remoteError } from "./protocol_exchange.ts";

Deno.test("remoteError: a server's error frame keeps its code; a code this version does not know is REMOTE_ERROR", () => {
  const known = remoteError(
    { type: "error", code: "CACHE_FULL", message: "no cache left", hint: "" },
    "opened",
  );
  assert.equal(known.code, "CACHE_FULL");
  assert.equal(known.details.remote, true);
  assert.equal(known.details.remoteCode, undefined);
  assert.equal(known.hint, "route to another server");

  const newer = remoteError(
    { type: "error", code: "QUOTA_EXCEEDED", message: "later", hint: "wait" },
    "opened",
  );
  assert.equal(newer.code, "REMOTE_ERROR");
  assert.equal(newer.details.remoteCode, "QUOTA_EXCEEDED");
  assert.match(newer.message, /server replied QUOTA_EXCEEDED: later/);
  assert.equal(newer.hint, "wait");

  assert.equal(remoteError(null, "opened").code, "STREAM_CLOSED");
  assert.equal(remoteError({ type: "close" }, "opened").code, "BAD_FRAME");
});
