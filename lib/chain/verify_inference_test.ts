import assert from "node:assert/strict";
import { encodeVerifyInference } from "./verify_inference.ts";

Deno.test("0x20 calldata is 160 bytes in the documented order", () => {
  const agent = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
  const data = encodeVerifyInference({
    modelHash: "0x" + "01".repeat(32),
    inputHash: "0x" + "02".repeat(32),
    outputHash: "0x" + "03".repeat(32),
    tokenCount: 9,
  }, agent);
  assert.equal((data.length - 2) / 2, 160);
  assert.equal(data.slice(2, 66), "01".repeat(32));
  assert.equal(data.slice(130, 194), "03".repeat(32));
  assert.equal(data.slice(194 + 24, 258), agent.slice(2).toLowerCase());
  assert.equal(BigInt("0x" + data.slice(258)), 9n);
  assert.throws(
    () => encodeVerifyInference({ modelHash: "0x1", inputHash: "", outputHash: "", tokenCount: 1 }, agent),
    /modelHash "0x1"/,
  );
});
