import assert from "node:assert/strict";
import { agentName, bytes32Utf8, encodeRegistration, modelHash } from "./agent_registration.ts";

const ADDR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

Deno.test("agentName: last path segment ≤ 16 chars + last 8 of the EIP-55 address", () => {
  assert.equal(agentName("bigscience/bloom-560m", ADDR.toLowerCase()), "bloom-560m-17dc79C8");
  assert.equal(agentName("meta-llama/Llama-3.1-8B-Instruct-long", ADDR), "Llama-3.1-8B-Ins-17dc79C8");
  assert.equal(agentName("/models/local/", ADDR), "local-17dc79C8");
});

Deno.test("modelHash is keccak256 of the model id, never zeros", () => {
  assert.equal(modelHash("bigscience/bloom-560m").length, 66);
  assert.notEqual(modelHash("bigscience/bloom-560m"), "0x" + "0".repeat(64));
  assert.notEqual(modelHash("a"), modelHash("b"));
  assert.throws(() => modelHash(""), /model id is empty/);
});

Deno.test("encodeRegistration: name[32] ‖ modelHash[32] ‖ capCount ‖ caps", () => {
  const hash = modelHash("x/y");
  const data = encodeRegistration({ name: "ab", modelHash: hash, capabilities: ["c"] });
  assert.equal(data.length, 2 + 64 * 4);
  assert.equal(data.slice(2, 66), "6162" + "0".repeat(60));
  assert.equal("0x" + data.slice(66, 130), hash);
  assert.equal(BigInt("0x" + data.slice(130, 194)), 1n);
  assert.equal(data.slice(194), "63" + "0".repeat(62));
  assert.throws(() => bytes32Utf8("x".repeat(33), "agent name"), /agent name "x{33}" is 33 bytes/);
  assert.throws(() => encodeRegistration({ name: "a", modelHash: "0x12" }), /modelHash 0x12 is not 32 bytes/);
});
