import assert from "node:assert/strict";
import { createFileAtomic, writeTextAtomic } from "./write_text_atomic.ts";

Deno.test("writeTextAtomic: replaces the file whole, with the mode asked; nothing left beside it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/state.json`;
    await writeTextAtomic(path, "one\n");
    await writeTextAtomic(path, "two\n", { mode: 0o600 });
    assert.equal(await Deno.readTextFile(path), "two\n");
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["state.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeTextAtomic: a failed write throws and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // the target is a directory that is not empty: the rename fails
    await Deno.mkdir(`${dir}/taken/inner`, { recursive: true });
    await assert.rejects(writeTextAtomic(`${dir}/taken`, "x"));
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["taken"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createFileAtomic: creates with the mode, never over a file, and a failed write leaves nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const p = `${dir}/key`;
    await createFileAtomic(p, new Uint8Array([1, 2, 3]), { mode: 0o600 });
    assert.deepEqual(await Deno.readFile(p), new Uint8Array([1, 2, 3]));
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(p)).mode! & 0o777, 0o600);
    await assert.rejects(createFileAtomic(p, "other"), Deno.errors.AlreadyExists);
    assert.deepEqual(await Deno.readFile(p), new Uint8Array([1, 2, 3]), "the first one stays");
    // a directory that does not exist: nothing created, no temporary file anywhere
    await assert.rejects(createFileAtomic(`${dir}/no/such/key`, "x"));
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["key"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
