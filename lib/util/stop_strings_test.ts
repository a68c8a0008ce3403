import assert from "node:assert/strict";
import { firstStopIndex, heldBackLength, StopScanner } from "./stop_strings.ts";

Deno.test("StopScanner without stops passes text through", () => {
  const s = new StopScanner([]);
  assert.equal(s.push("a"), "a");
  assert.equal(s.flush(), "");
  assert.equal(s.stopped, false);
});

Deno.test("StopScanner finds a stop string split over pieces and emits nothing of it", () => {
  const s = new StopScanner(["</end>"]);
  const out = ["Hello <", "/e", "nd> tail"].map((p) => s.push(p)).join("");
  assert.equal(out, "Hello ");
  assert.equal(s.stopped, true);
  assert.equal(s.push("more"), "");
  assert.equal(s.flush(), "");
});

Deno.test("StopScanner releases held text that turned out not to be a stop string", () => {
  const s = new StopScanner(["\nUser:"]);
  assert.equal(s.push("a\n"), "a");
  assert.equal(s.push("Us"), "");
  assert.equal(s.push("ing"), "\nUsing");
  assert.equal(s.push("\nU"), "");
  assert.equal(s.flush(), "\nU");
  assert.equal(s.stopped, false);
});

Deno.test("StopScanner picks the earliest of several stops", () => {
  const s = new StopScanner(["bb", "a"]);
  assert.equal(s.push("xxbbya"), "xx");
});

Deno.test("firstStopIndex finds the earliest stop; heldBackLength the longest possible stop start", () => {
  assert.equal(firstStopIndex("x###\nUser:", ["\nUser:", "###"]), 1);
  assert.equal(firstStopIndex("abc", ["", "d"]), -1, "empty stops never match");
  assert.equal(heldBackLength("Hello\nUs", ["\nUser:", "###"]), 3);
  assert.equal(heldBackLength("a##", ["\nUser:", "###"]), 2);
  assert.equal(heldBackLength("Hello\nUsual", ["\nUser:"]), 0);
  assert.equal(heldBackLength("ab", ["b"]), 0, "a whole stop string is not a proper prefix");
});
