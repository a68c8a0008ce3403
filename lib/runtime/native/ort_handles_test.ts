import assert from "node:assert/strict";
import { RuntimeError } from "../../errors.ts";
import type { OrtApi } from "./ort_api.ts";
import { cString, noLiveObjects, OrtHandle } from "./ort_handles.ts";

Deno.test("OrtHandle: released exactly once, counted per kind, and unusable after", () => {
  const live = noLiveObjects();
  const api = { live } as unknown as OrtApi;
  const freed: unknown[] = [];
  const p = Deno.UnsafePointer.create(0x1000n);
  const h = new OrtHandle(api, "container", p, (x) => freed.push(x));
  assert.equal(live.container, 1);
  assert.equal(h.ptr, p);
  h.release();
  h.release();
  assert.deepEqual(freed, [p], "the native release ran once, with the pointer");
  assert.equal(live.container, 0);
  assert.ok(h.released);
  assert.throws(
    () => h.ptr,
    (e) => e instanceof RuntimeError && /container used after release/.test(e.message),
  );
});

Deno.test("cString: UTF-8 with one NUL at the end", () => {
  assert.deepEqual([...cString("aé")], [0x61, 0xc3, 0xa9, 0]);
});
