/**
 * `plumise doctor` against a real local chain (anvil), the Oracle stub and the local hub: every
 * check passes for a node that is ready, and each one fails, with a hint, for the problem it is
 * there to catch.
 */
import assert from "node:assert/strict";
import { Wallet } from "ethers";
import { resolveConfig } from "../lib/config/resolve_config.ts";
import type { Config } from "../lib/config/types.ts";
import { type DoctorCheck, runDoctor } from "../lib/node/doctor.ts";
import { hubFile } from "../lib/runtime/hub_download.ts";
import { startTestChain } from "./helpers/anvil.ts";
import { makeBloomCheckpoint } from "./helpers/checkpoint_fixture.ts";
import { runPlumise } from "./helpers/cli.ts";
import { freePort } from "./helpers/free_port.ts";
import { HubServer } from "./helpers/hub_server.ts";
import { startOracleStub } from "./helpers/oracle_stub.ts";

const REPO = "test/tiny-bloom";
// the engine library is copied once for all runs of this file
const CACHE_HOME = await Deno.makeTempDir({ prefix: "plumise-doctor-cache-" });

function configOf(env: Record<string, string>): Config {
  return resolveConfig({ env, system: { availableMemoryBytes: 16 * 2 ** 30 } }).config;
}

const byName = (checks: DoctorCheck[]) => Object.fromEntries(checks.map((c) => [c.name, c]));

Deno.test("doctor: a node ready to go live passes every check; each problem fails its check with a hint", async () => {
  await using chain = await startTestChain();
  await using oracle = await startOracleStub({ rpcUrl: chain.rpcUrl });
  const ck = await makeBloomCheckpoint({ numLayers: 4, shards: 1 });
  await using hub = await HubServer.start({ repos: { [REPO]: ck.dir } });
  const home = await Deno.makeTempDir();
  const key = await chain.newFundedKey();
  const address = new Wallet(key).address;
  const env: Record<string, string> = {
    PLUMISE_PRIVATE_KEY: key,
    PLUMISE_RPC_URL: chain.rpcUrl,
    ORACLE_API_URL: oracle.url,
    HF_ENDPOINT: hub.url,
    HF_HOME: `${home}/hf`,
    PLUMISE_DATA_DIR: `${home}/data`,
    MODEL_NAME: REPO,
    NUM_BLOCKS: "2",
    PETALS_HOST: "127.0.0.1",
    API_HOST: "127.0.0.1",
    PETALS_PORT: String(freePort()),
    DIRECT_PORT: String(freePort()),
    API_PORT: String(freePort()),
  };
  const run = (e: Record<string, string>, memory = 16 * 2 ** 30, wallet: { address: string } = { address }) =>
    runDoctor(configOf(e), { wallet, availableMemoryBytes: memory, cacheHome: CACHE_HOME });
  try {
    const good = await run(env);
    assert.deepEqual(good.map((c) => c.name), [
      "onnxruntime",
      "checkpoint",
      "memory",
      "disk",
      "swarm port",
      "direct port",
      "api port",
      "identity",
      "reachability",
      "wallet",
      "chain",
      "balance",
      "registration",
      "oracle",
      "clock",
    ]);
    assert.deepEqual(good.filter((c) => !c.ok), []);
    const g = byName(good);
    assert.match(
      g.onnxruntime.detail,
      /^onnxruntime 1\.30\.0 \(\w+-\w+, CPU\) loads from .*\/plumise\/native\//,
    );
    assert.match(g.checkpoint.detail, /answers for test\/tiny-bloom/);
    // the blocks, then the client head the API loads on its first generation, from the model's config
    assert.match(
      g.memory.detail,
      /^2 int8 blocks of test\/tiny-bloom need about .*, and the client head .* more; /,
    );
    assert.match(g.balance.detail, /holds 100\.0000 PLM/);
    assert.match(g.registration.detail, /not registered yet: serve registers/);
    assert.match(g.oracle.detail, /answers \(HTTP 404/);
    assert.match(g.clock.detail, /^-?[01] s from the Oracle's clock/);

    // each problem fails its own check, with a hint
    const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(env.API_PORT) });
    await Deno.mkdir(`${home}/data`, { recursive: true });
    await Deno.writeTextFile(`${home}/data/identity.key`, "k", { mode: 0o644 });
    await Deno.chmod(`${home}/data/identity.key`, 0o644);
    oracle.setSkew(120);
    const broke = byName(await run({ ...env, PLUMISE_CHAIN_ID: "419561" }, 1024));
    listener.close();
    for (const name of ["memory", "api port", "identity", "chain", "clock"]) {
      assert.equal(broke[name].ok, false, `${name} should fail: ${broke[name].detail}`);
      assert.ok(broke[name].hint, `${name} has a hint`);
    }
    assert.match(broke["api port"].hint!, /already running/);
    assert.match(broke.identity.hint!, /chmod 600/);
    assert.match(broke.chain.detail, /is chain 41956, but PLUMISE_CHAIN_ID is 419561/);
    assert.match(broke.clock.detail, /^1(19|20|21) s from the Oracle's clock/);
    assert.match(broke.clock.hint!, /timedatectl set-ntp true/);
    assert.equal(broke.balance, undefined, "no balance line when the chain is the wrong one");
    assert.equal(broke.onnxruntime.ok, true);
    oracle.setSkew(0);

    // an empty wallet cannot register
    const poor = new Wallet(await chain.newFundedKey(0n)).address;
    const empty = byName(await run(env, undefined, { address: poor }));
    assert.equal(empty.balance.ok, false);
    assert.match(empty.balance.hint!, /send a little PLM/);
    assert.equal(empty.registration.ok, false);

    // once the weights are cached, the hub may be gone
    await hubFile({ repo: REPO, file: "model.safetensors", endpoint: hub.url, hfHome: `${home}/hf` });
    const cached = byName(await run({ ...env, HF_ENDPOINT: "http://127.0.0.1:9" }));
    assert.equal(cached.checkpoint.ok, true, cached.checkpoint.detail);
    assert.match(cached.checkpoint.detail, /is cached in .*no download needed/);
    assert.equal(cached.disk.ok, true);
    const gone = byName(await run({ ...env, HF_ENDPOINT: "http://127.0.0.1:9", MODEL_NAME: "test/other" }));
    assert.equal(gone.checkpoint.ok, false);
    assert.match(gone.checkpoint.hint!, /HF_ENDPOINT/);
    // no Oracle
    await oracle.stop();
    const noOracle = byName(await run(env));
    assert.equal(noOracle.oracle.ok, false);
    assert.match(noOracle.oracle.hint!, /ORACLE_API_URL/);
  } finally {
    await Deno.remove(home, { recursive: true });
    await Deno.remove(ck.dir, { recursive: true });
  }
});

Deno.test("cli: doctor --json --offline: the check list, exit 0 when all pass and 1 when one fails", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 2, shards: 1 });
  const home = await Deno.makeTempDir();
  const env = {
    XDG_CACHE_HOME: CACHE_HOME,
    HF_HOME: `${home}/hf`,
    PLUMISE_DATA_DIR: `${home}/data`,
    MODEL_NAME: ck.dir,
    NUM_BLOCKS: "1",
    PETALS_HOST: "127.0.0.1",
    API_HOST: "127.0.0.1",
    PETALS_PORT: String(freePort()),
    DIRECT_PORT: "-1",
    API_PORT: "0",
  };
  try {
    const r = await runPlumise(["doctor", "--json", "--offline"], { env });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const { checks } = JSON.parse(r.stdout) as { checks: DoctorCheck[] };
    assert.deepEqual(checks.map((c) => c.name), [
      "onnxruntime",
      "checkpoint",
      "memory",
      "disk",
      "swarm port",
      "direct port",
      "api port",
      "identity",
      "reachability",
    ]);
    for (const c of checks) {
      assert.deepEqual(Object.keys(c).sort(), ["detail", "name", "ok"]);
      assert.equal(c.ok, true, `${c.name}: ${c.detail}`);
    }
    assert.match(checks[1].detail, /^local checkpoint /);
    assert.equal(checks[5].detail, "off");

    await Deno.mkdir(`${home}/data`, { recursive: true });
    await Deno.writeTextFile(`${home}/data/identity.key`, "k");
    await Deno.chmod(`${home}/data/identity.key`, 0o640);
    const bad = await runPlumise(["doctor", "--offline"], { env });
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /^FAIL identity: .*mode 0640/m);
    assert.match(bad.stdout, /^ {5}hint: chmod 600 /m);
    assert.match(bad.stdout, /1 of 9 checks failed/);
    // without --offline and without a wallet: the wallet line says what to do
    const noWallet = await runPlumise(["doctor", "--json"], {
      env: { ...env, ORACLE_API_URL: "http://127.0.0.1:9", PLUMISE_RPC_URL: "http://127.0.0.1:9" },
    });
    assert.equal(noWallet.code, 1);
    const w = (JSON.parse(noWallet.stdout).checks as DoctorCheck[]).find((c) => c.name === "wallet")!;
    assert.equal(w.ok, false);
    assert.match(w.hint!, /plumise wallet new/);
    // the chain is checked all the same (before: skipped without a wallet)
    const chain = (JSON.parse(noWallet.stdout).checks as DoctorCheck[]).find((c) => c.name === "chain");
    assert.equal(chain?.ok, false);
    assert.match(chain!.hint!, /PLUMISE_RPC_URL/);
  } finally {
    await Deno.remove(home, { recursive: true });
    await Deno.remove(ck.dir, { recursive: true });
  }
});

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(CACHE_HOME, { recursive: true });
  } catch {
    // already gone
  }
});
