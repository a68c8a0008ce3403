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
