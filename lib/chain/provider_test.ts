import assert from "node:assert/strict";
import { ChainError } from "../errors.ts";
import { ChainProvider } from "./provider.ts";

Deno.test("an RPC URL's credentials never reach the provider's errors", async () => {
  // Port 9 (discard) on loopback: refused at once.
  const url = "http://frank:hunter2@127.0.0.1:9/rpc?apikey=ak-0f1e2d3c4b";
  const provider = new ChainProvider({ rpcUrl: url, chainId: 41956, timeoutMs: 2000 });
  try {
    assert.equal(provider.displayUrl, "http://[redacted]@127.0.0.1:9/rpc?apikey=[redacted]");
    const err = await provider.getChainId().then(() => undefined, (e) => e);
    assert.ok(err instanceof ChainError, String(err));
    const text = `${err.message} ${err.hint} ${JSON.stringify(err.toJSON())}`;
    for (const s of ["frank", "hunter2", "ak-0f1e2d3c4b"]) assert.ok(!text.includes(s), text);
    assert.match(err.message, /eth_chainId on http:\/\/\[redacted\]@127\.0\.0\.1:9\/rpc/);
  } finally {
    provider.destroy();
  }
});
