import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
import { encodeSafetensors, encodeTensor } from "../../tests/helpers/checkpoint_fixture.ts";
import { CheckpointTensors, SafetensorsFile, storedBytes, toFloat32 } from "./safetensors.ts";

const values = Float32Array.from([0.5, -1.25, 3.140625, 1e-3, -7, 65504]);

async function file(bytes: Uint8Array): Promise<string> {
  const p = await Deno.makeTempFile({ suffix: ".safetensors" });
  await Deno.writeFile(p, bytes);
  return p;
}

Deno.test("SafetensorsFile: reads F32, F16 and BF16 tensors by range and converts to float32", async () => {
  const entries = (["F32", "F16", "BF16"] as const).map((dtype) => ({
    name: `t.${dtype}`,
    dtype,
    shape: [2, 3],
    bytes: encodeTensor(values, dtype).bytes,
  }));
  const p = await file(encodeSafetensors(entries));
  const f = await SafetensorsFile.open(p);
  try {
    assert.deepEqual([...f.tensors.keys()], ["t.F32", "t.F16", "t.BF16"]);
    for (const dtype of ["F32", "F16", "BF16"] as const) {
      const t = await f.read(`t.${dtype}`);
      assert.deepEqual(t.shape, [2, 3]);
      assert.deepEqual(t.data, encodeTensor(values, dtype).exact);
    }
    await assert.rejects(
      f.read("nope"),
      (e: unknown) => e instanceof RuntimeError && e.code === "BAD_CHECKPOINT" && /nope/.test(e.message),
    );
  } finally {
    f.close();
  }
  const ck = new CheckpointTensors(new Map([["t.F16", "a.safetensors"], ["gone", "a.safetensors"]]), () => p);
  assert.deepEqual((await ck.read("t.F16")).data, encodeTensor(values, "F16").exact);
  await assert.rejects(ck.read("t.F32"), /not in the checkpoint/);
  // a header entry alone: dtype and shape without the data
  const e = await ck.entry("t.F16");
  assert.deepEqual([e.dtype, e.shape, e.end - e.begin], ["F16", [2, 3], 12]);
  // the index names the file, the file lacks the tensor
  await assert.rejects(
    ck.entry("gone"),
    (err: unknown) =>
      err instanceof RuntimeError && err.code === "BAD_CHECKPOINT" && /gone is not in/.test(err.message),
  );
  await ck.close();
});

Deno.test("SafetensorsFile.lazy: a tensor's bytes read from the file when asked, any range; not after close", async () => {
  const entries = (["F32", "BF16"] as const).map((dtype) => ({
    name: `t.${dtype}`,
    dtype,
    shape: [2, 3],
    bytes: encodeTensor(values, dtype).bytes,
  }));
  const p = await file(encodeSafetensors(entries));
  const ck = new CheckpointTensors(new Map(entries.map((e) => [e.name, "a.safetensors"])), () => p);
  const lazy = await ck.lazy("t.BF16");
  assert.deepEqual([lazy.shape, lazy.dtype, lazy.byteLength, lazy.bytes], [[2, 3], "BF16", 12, undefined]);
  assert.deepEqual(storedBytes(lazy), entries[1].bytes);
  const part = new Uint8Array(4);
  lazy.readInto(6, part);
  assert.deepEqual(part, entries[1].bytes.subarray(6, 10));
  const f32 = await ck.lazy("t.F32"); // another tensor of the same file, read in between
  assert.deepEqual(storedBytes(f32), entries[0].bytes);
  lazy.readInto(0, part);
  assert.deepEqual(part, entries[1].bytes.subarray(0, 4));
  assert.throws(() => lazy.readInto(10, part), /bytes \[10, 14\) of 12/);
  assert.deepEqual(storedBytes(await ck.readRaw("t.BF16")), entries[1].bytes, "the same in memory");
  await ck.close();
  assert.throws(
    () => lazy.readInto(0, part),
    (e: unknown) => e instanceof RuntimeError && e.code === "BAD_CHECKPOINT" && /closed/.test(e.message),
  );
});

Deno.test("SafetensorsFile: truncated files and impossible headers are BAD_CHECKPOINT errors naming the file", async () => {
  const good = encodeSafetensors([{ name: "w", dtype: "F32", shape: [4], bytes: new Uint8Array(16) }]);
  const bad = (e: unknown) =>
    e instanceof RuntimeError && e.code === "BAD_CHECKPOINT" && /safetensors/.test(e.message);
  await assert.rejects(SafetensorsFile.open(await file(good.subarray(0, good.length - 4))), bad);
  const huge = good.slice();
  new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
  await assert.rejects(SafetensorsFile.open(await file(huge)), bad);
  await assert.rejects(SafetensorsFile.open(await file(new Uint8Array(3))), bad);
  const wrongSize = encodeSafetensors([{ name: "w", dtype: "F32", shape: [5], bytes: new Uint8Array(16) }]);
  await assert.rejects(SafetensorsFile.open(await file(wrongSize)), bad);
  assert.throws(
    () => toFloat32("I8", new Uint8Array(2)),
    (e: unknown) => e instanceof RuntimeError && e.code === "UNSUPPORTED_MODEL",
  );
});

Deno.test("SafetensorsFile: a header of null, or an entry of null, is BAD_CHECKPOINT", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const json of ["null", '{"a":null}', "[1]"]) {
      const body = new TextEncoder().encode(json.padEnd(8, " "));
      const bytes = new Uint8Array(8 + body.length);
      new DataView(bytes.buffer).setBigUint64(0, BigInt(body.length), true);
      bytes.set(body, 8);
      await Deno.writeFile(`${dir}/x.safetensors`, bytes);
      await assert.rejects(
        SafetensorsFile.open(`${dir}/x.safetensors`),
        (e: unknown) => e instanceof RuntimeError && e.code === "BAD_CHECKPOINT",
        json,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
