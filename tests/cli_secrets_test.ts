/**
 * Secrets at the command line (issue 21 item 14): an RPC URL's userinfo and query tokens never
 * reach stdout or stderr, and a secret typed as a flag (visible in `ps`) gets a warning.
 */
import assert from "node:assert/strict";
import { runPlumise } from "./helpers/cli.ts";

const KEY = "0x" + "4d".repeat(32);
// Port 9 on loopback: refused at once.
const RPC = "http://gina:rpcpw-31@127.0.0.1:9/plm?apikey=ak-77c0ffee11&chain=1";
const SECRETS = ["gina", "rpcpw-31", "ak-77c0ffee11", "4d4d4d4d"];

function assertClean(text: string): void {
  for (const s of SECRETS) assert.ok(!text.includes(s), `${s} leaked:\n${text}`);
}

Deno.test("cli: --private-key and an --rpc-url with credentials warn; config and status never print them", async () => {
  const config = await runPlumise(["config", "--json", "--private-key", KEY, "--rpc-url", RPC]);
  assert.equal(config.code, 0, config.stderr);
  assertClean(config.stdout + config.stderr);
  const table = JSON.parse(config.stdout).config;
  assert.equal(table.rpcUrl.value, "http://[redacted]@127.0.0.1:9/plm?apikey=[redacted]&chain=[redacted]");
  assert.match(config.stderr, /^warning: --private-key on the command line is visible .*ps/m);
  assert.match(config.stderr, /^warning: --rpc-url carries credentials/m);

  // From the environment: no warning, and status (chain down) shows the redacted URL only.
  const status = await runPlumise(["status", "-v"], {
    env: {
      PLUMISE_PRIVATE_KEY: KEY,
      PLUMISE_RPC_URL: RPC,
      ORACLE_API_URL: "http://127.0.0.1:9/?token=tok-5e5e5e5e",
    },
  });
  assert.equal(status.code, 1, status.stderr);
  assertClean(status.stdout + status.stderr);
  assert.ok(!(status.stdout + status.stderr).includes("tok-5e5e5e5e"));
  assert.doesNotMatch(status.stderr, /^warning:/m);
  assert.match(status.stdout, /^Chain: {3}http:\/\/\[redacted\]@127\.0\.0\.1:9\/plm\?apikey=\[redacted\]/m);
});

Deno.test("cli: an unparsable URL with credentials, a relay URL's token and a key typed as an argument never print", async () => {
  // a port out of range: the URL parser refuses it, and the error quoted it whole
  const bad = "https://alice:S3cretPassw0rd@rpc.example:99999/v2/abcdefabcdefabcdef1234567890";
  const r1 = await runPlumise(["config"], { env: { PLUMISE_RPC_URL: bad } });
  assert.notEqual(r1.code, 0);
  for (const s of ["alice", "S3cretPassw0rd", "abcdefabcdefabcdef1234567890"]) {
    assert.ok(!(r1.stdout + r1.stderr).includes(s), `${s} leaked:\n${r1.stderr}`);
  }
  assert.match(r1.stderr, /PLUMISE_RPC_URL=https:\/\/\[redacted\]@rpc\.example:99999\/v2\/\[redacted\]/);

  // GATEWAY_RELAY_URL (a ws URL) is shown redacted like the http ones
  const relay = "wss://bob:Hunter2Hunter2@gw.example/ws?token=SuperSecretToken99";
  const r2 = await runPlumise(["config", "--json"], { env: { GATEWAY_RELAY_URL: relay } });
  assert.equal(r2.code, 0, r2.stderr);
  for (const s of ["bob", "Hunter2Hunter2", "SuperSecretToken99"]) {
    assert.ok(!(r2.stdout + r2.stderr).includes(s), s);
  }

  // a private key given where no argument goes: commander's error no longer echoes it
  const r3 = await runPlumise(["wallet", "address", KEY]);
  assert.notEqual(r3.code, 0);
  assertClean(r3.stdout + r3.stderr);
  assert.match(r3.stderr, /too many arguments/);
});
