import assert from "node:assert/strict";
import { SwarmError } from "../errors.ts";
import { recordPayload, toBase64 } from "../wire/mod.ts";
import { signRecord, verifySignedRecord } from "./record_signer.ts";
import { testPeer } from "../testing/mod.ts";

Deno.test("record signer: a signed record verifies; tampering, other keys and expiry do not", async () => {
  const now = 1_700_000_000_000;
  const a = await testPeer(now);
  const b = await testPeer(now);
  const signed = await a.sign();
  assert.deepEqual(await verifySignedRecord(signed, now), a.record());
  const fails = async (w: { payload: string; signature: string }, code: string, at = now) => {
    await assert.rejects(
      () => verifySignedRecord(w, at),
      (e: unknown) => e instanceof SwarmError && e.code === code,
    );
  };
  // payload changed after signing
  await fails(
    { ...signed, payload: signed.payload.replace('"start":0', '"start":1') },
    "RECORD_BAD_SIGNATURE",
  );
  // valid signature of another key over a record naming peer a
  const payload = recordPayload(a.record());
  const sigByB = await b.privateKey.sign(new TextEncoder().encode("plumise-record/1\n" + payload));
  await fails({ payload, signature: toBase64(sigByB) }, "RECORD_BAD_SIGNATURE");
  // expired
  await fails(signed, "RECORD_EXPIRED", now + 60_001);
  // garbage
  await fails({ payload: "{}", signature: signed.signature }, "RECORD_INVALID");
  await fails({ ...signed, signature: "AAAA" }, "RECORD_BAD_SIGNATURE");
  // cannot sign for someone else
  await assert.rejects(() => signRecord(b.record(), a.privateKey), /cannot sign a record/);
});
