import assert from "node:assert/strict";
import { cacheFailure } from "./cache_failure.ts";

Deno.test("cacheFailure: a full disk and an unwritable cache are typed, naming HF_HOME; anything else is not", () => {
  const full = cacheFailure(new Error("No space left on device (os error 28)"), "/x");
  assert.equal(full?.code, "HUB_DISK_FULL");
  assert.match(full!.message, /HF_HOME \/x/);
  const denied = cacheFailure(
    new Deno.errors.PermissionDenied("Permission denied (os error 13): mkdir '/x/hub'"),
    "/x",
  );
  assert.equal(denied?.code, "HUB_CACHE_UNWRITABLE");
  assert.match(denied!.hint, /point HF_HOME at a directory this user can write/);
  assert.equal(
    cacheFailure(new Error("Read-only file system (os error 30)"), "/x")?.code,
    "HUB_CACHE_UNWRITABLE",
  );
  assert.equal(cacheFailure(new Error("connection reset"), "/x"), undefined);
});
