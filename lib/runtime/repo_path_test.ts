import assert from "node:assert/strict";
import { isPlainName, isRepoRelativePath } from "./repo_path.ts";

Deno.test("repo paths: file names of a repo pass; anything that leaves the directory does not", () => {
  for (
    const ok of [
      "config.json",
      "model-00001-of-00002.safetensors",
      "onnx/model.onnx",
      "a b+c.json",
      "..a",
      "a..",
      "x".repeat(255),
    ]
  ) {
    assert.ok(isRepoRelativePath(ok), ok);
  }
  for (
    const bad of [
      "",
      "../x",
      "a/../../x",
      "a/./b",
      "/etc/passwd",
      "a//b",
      "a/",
      "..",
      ".",
      "a\\..\\b",
      "a\u0000b",
      "a\nb",
      "x".repeat(1025),
      "x".repeat(256),
      "a/" + "é".repeat(128),
    ]
  ) {
    assert.ok(!isRepoRelativePath(bad), JSON.stringify(bad));
  }
});

Deno.test("repo paths: commits and ETags are one plain name", () => {
  for (const ok of ["a".repeat(40), "0123abcd".repeat(8), "abc-12", "v1.0_x"]) assert.ok(isPlainName(ok), ok);
  for (const bad of ["", ".", "..", "../x", "a/b", "a b", "x".repeat(129), '"quoted"', "W/x"]) {
    assert.ok(!isPlainName(bad), JSON.stringify(bad));
  }
});
