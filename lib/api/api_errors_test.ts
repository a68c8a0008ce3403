import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
import { memoryLogger } from "../util/logger.ts";
import { Metrics } from "../util/metrics.ts";
import { FakeGenerator, readSse } from "../testing/mod.ts";
import { ApiHandler } from "./api_handler.ts";

const JSON_TYPE = { "content-type": "application/json" };
const SECRET_DETAIL = "/home/plumise-admin/.cache/model.onnx: bad allocation at 0x7f3a";

function setup(gen: FakeGenerator) {
  const { logger, records } = memoryLogger("debug");
  const handler = new ApiHandler({ generator: gen, metrics: new Metrics(), logger });
  const post = (path: string, json: unknown) =>
    handler.app.request(path, { method: "POST", body: JSON.stringify(json), headers: JSON_TYPE });
  return { app: handler.app, post, records };
}

Deno.test("a malformed percent-encoding in the path is a 400, not a 500", async () => {
  const { app, records } = setup(new FakeGenerator());
  for (const path of ["/v1/models/%E0%A4%A", "/v1/models/%ZZ", "/health%", "/api/v1/generate/%C0"]) {
    const r = await app.request(path);
    assert.equal(r.status, 400, path);
    const text = await r.text();
    assert.match(text, /BAD_PATH|bad_path/, path);
    assert.doesNotMatch(text, /URI malformed/, path);
  }
  assert.ok(
    !records.some((r) => r.level === "error"),
    "a bad path is the client's fault, not logged as an error",
  );
  assert.equal((await app.request("/v1/models/test-org%2Ftiny-model")).status, 200);
});

Deno.test("a 500 never echoes the internal message: the answer carries an error id, the log the message", async () => {
  for (const error of [new Error(SECRET_DETAIL), new RuntimeError("ENGINE_FAILED", SECRET_DETAIL)]) {
    const { post, records } = setup(new FakeGenerator({ fail: { at: 0, error } }));
    const r = await post("/api/v1/generate", { inputs: "a" });
    assert.equal(r.status, 500);
    const b = await r.json();
    assert.doesNotMatch(JSON.stringify(b), /plumise-admin|0x7f3a|allocation/);
    assert.match(b.error_id, /^[0-9a-f]{12}$/);
    assert.match(b.error, new RegExp(`internal error.*${b.error_id}`));
    const logged = records.find((l) => l.level === "error" && l.errorId === b.error_id);
    assert.ok(logged, "the log line carries the same id");
    assert.match(String(logged.error), /bad allocation/);

    const chat = await post("/v1/chat/completions", { messages: [{ role: "user", content: "x" }] });
    assert.equal(chat.status, 500);
    const c = await chat.json();
    assert.doesNotMatch(JSON.stringify(c), /plumise-admin|0x7f3a|allocation/);
    assert.equal(c.error.type, "server_error");
    assert.match(c.error.error_id, /^[0-9a-f]{12}$/);
  }
});

Deno.test("a 500 in the middle of a stream: the error event carries an id, not the message", async () => {
  const { post, records } = setup(new FakeGenerator({ fail: { at: 1, error: new Error(SECRET_DETAIL) } }));
  const events = await readSse(await post("/api/v1/generate", { inputs: "a", stream: true }));
  assert.deepEqual(JSON.parse(events[0]), { token: " one" });
  const last = JSON.parse(events[1]);
  assert.doesNotMatch(events[1], /plumise-admin|0x7f3a|allocation/);
  assert.equal(last.code, "INTERNAL");
  assert.match(last.error_id, /^[0-9a-f]{12}$/);
  assert.ok(records.some((l) => l.errorId === last.error_id && /bad allocation/.test(String(l.error))));
  const chat = await readSse(
    await post("/v1/chat/completions", { messages: [{ role: "user", content: "x" }], stream: true }),
  );
  const err = JSON.parse(chat.at(-1)!);
  assert.doesNotMatch(chat.at(-1)!, /plumise-admin|0x7f3a|allocation/);
  assert.match(err.error.error_id, /^[0-9a-f]{12}$/);
});
