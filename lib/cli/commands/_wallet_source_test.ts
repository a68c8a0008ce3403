import assert from "node:assert/strict";
import { editLine } from "./_wallet_source.ts";

Deno.test("password prompt: backspace removes a whole character; Ctrl-U clears; Enter ends; Ctrl-C cancels", () => {
  // p, ä, Backspace, x, Enter: "px" (it was "p\uFFFDx": one byte of ä stayed)
  assert.deepEqual(editLine("", "pä\x7fx\r"), { line: "px", end: "enter" });
  assert.deepEqual(editLine("", "日本\x7f\x7f語"), { line: "語" });
  assert.deepEqual(editLine("", "abc\x15de\n"), { line: "de", end: "enter" });
  assert.deepEqual(editLine("", "ab\x1b[Acd"), { line: "ab[Acd" }, "escape itself is dropped");
  assert.deepEqual(editLine("secret", "\x03"), { line: "secret", end: "cancel" });
  assert.deepEqual(editLine("", "\x04"), { line: "", end: "cancel" });
  assert.deepEqual(editLine("x", "\x04"), { line: "x" }, "Ctrl-D cancels only an empty line");
  // "  spaces  " stay: a password is taken as typed
  assert.deepEqual(editLine("", "  pw  \r"), { line: "  pw  ", end: "enter" });
});
