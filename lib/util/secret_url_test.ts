import assert from "node:assert/strict";
import { errorMessage, redact } from "../errors.ts";
import { memoryLogger } from "./logger.ts";
import { redactUrl, registerUrlSecrets } from "./secret_url.ts";

Deno.test("redactUrl hides userinfo, query values and key-like path segments, keeps the rest", () => {
  assert.equal(redactUrl("http://localhost:26902"), "http://localhost:26902");
  assert.equal(redactUrl("https://rpc.plumise.com/"), "https://rpc.plumise.com/");
  assert.equal(
    redactUrl("https://alice:s3cret@rpc.example:8545/rpc?apikey=tok&chain=1"),
    "https://[redacted]@rpc.example:8545/rpc?apikey=[redacted]&chain=[redacted]",
  );
  assert.equal(redactUrl("https://only-user@rpc.example"), "https://[redacted]@rpc.example/");
  assert.equal(
    redactUrl("https://mainnet.infura.io/v3/9aa3d95b3bc440fa88ea12eaa4456161"),
    "https://mainnet.infura.io/v3/[redacted]",
  );
  assert.equal(redactUrl("not a url"), "not a url");
});

Deno.test("an RPC URL's credentials are redacted from errors and log lines, whatever form they take", () => {
  const url = "http://bob:pw9@127.0.0.1:9/rpc?token=tok-abcdef123&x=1";
  registerUrlSecrets(url);
  const shown = "http://[redacted]@127.0.0.1:9/rpc?token=[redacted]&x=[redacted]";
  assert.equal(redact(`eth_chainId on ${url} failed`), `eth_chainId on ${shown} failed`);
  // the normalised form, and the form without userinfo that fetch errors print
  assert.ok(!redact(new URL(url).href).includes("tok-abcdef123"));
  const noUser = "http://127.0.0.1:9/rpc?token=tok-abcdef123&x=1";
  assert.ok(!redact(`error sending request for url (${noUser})`).includes("tok-abcdef123"));
  // components on their own (a password is a secret at any length)
  assert.equal(redact("user bob pass pw9"), "user [redacted] pass [redacted]");
  assert.equal(redact("tok-abcdef123"), "[redacted]");
  // the Basic credentials an RPC may echo back: base64 of "bob:pw9"
  assert.equal(
    redact(`echo: authorization: Basic ${btoa("bob:pw9")}`),
    "echo: authorization: Basic [redacted]",
  );
  assert.equal(errorMessage(new Error(`boom at ${url}`)), `boom at ${shown}`);
  const { logger, records } = memoryLogger();
  const lines: string[] = [];
  const l = logger.child({ rpcUrl: url });
  l.info(`calling ${url}`, { nested: { url } });
  assert.equal(records.length, 1);
  lines.push(JSON.stringify(records[0]));
  for (const line of lines) {
    assert.ok(!line.includes("pw9") && !line.includes("tok-abcdef123"), line);
  }
});

Deno.test("redactUrl: a URL the parser refuses still loses its userinfo, query and key-like segments", () => {
  assert.equal(redactUrl("https://u:pa/ss@host/"), "https://[redacted]@host/");
  assert.equal(redactUrl("https://u:p#w@host:99999/x?k=v"), "https://[redacted]@host:99999/x?[redacted]");
  assert.equal(
    redactUrl("http://host:99999/v3/0123456789abcdef0123456789abcdef"),
    "http://host:99999/v3/[redacted]",
  );
  assert.equal(redactUrl("not a url"), "not a url");
});
