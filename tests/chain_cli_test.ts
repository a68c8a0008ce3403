/**
 * `plumise wallet|register|claim|status` run as subprocesses against the test chain and Oracle stub.
 */
import assert from "node:assert/strict";
import { Wallet } from "ethers";
import { startTestChain } from "./helpers/anvil.ts";
import { startOracleStub } from "./helpers/oracle_stub.ts";
import { cleanEnv, cliArgv, textReader } from "./helpers/cli.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function plumise(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, ...args],
    env: { NO_COLOR: "1", HOME: Deno.env.get("HOME") ?? "/tmp", PATH: Deno.env.get("PATH") ?? "", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("plumise register / claim / status --json against the test chain", async () => {
  await using chain = await startTestChain();
  await using oracle = await startOracleStub({ rpcUrl: chain.rpcUrl });
  const key = chain.fundedKeys[8];
  const address = new Wallet(key).address;
  const env = {
    PLUMISE_PRIVATE_KEY: key,
    PLUMISE_RPC_URL: chain.rpcUrl,
    PLUMISE_CHAIN_ID: "41956",
    ORACLE_API_URL: oracle.url,
  };
  let r = await plumise(["register", "--json"], env);
  assert.equal(r.code, 0, r.stderr);
  const reg = JSON.parse(r.stdout);
  assert.equal(reg.status, "registered");
  assert.match(reg.txHash, /^0x[0-9a-f]{64}$/);
  r = await plumise(["register"], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /already registered/);
  assert.equal((await chain.txsTo("0x0000000000000000000000000000000000000021", address)).length, 1);
  assert.ok(!r.stdout.includes(key.slice(2)) && !r.stderr.includes(key.slice(2)), "the key never appears");

  r = await plumise(["claim", "--json"], env);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { claimed: false, reason: "no pending reward", pendingWei: "0" });
  await chain.setPending(address, 5n * 10n ** 17n);
  r = await plumise(["status", "--json"], env);
  assert.equal(r.code, 0, r.stderr);
  const st = JSON.parse(r.stdout);
  assert.equal(st.online, true);
  assert.deepEqual(st.registered, { ok: true, value: true, source: "agent_isAgentAccount" });
  assert.deepEqual(st.pendingRewardWei, { ok: true, value: "500000000000000000" });
  assert.deepEqual(st.currentEpoch, { ok: true, value: 0 });
  assert.equal(st.oracle.ok, false);
  assert.match(st.oracle.reason, /404/);
  r = await plumise(["claim"], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^claimed 0\.5000 PLM in 0x[0-9a-f]{64}/);
  r = await plumise(["status"], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Agent: {3}0x[0-9a-fA-F]{40}$/m);
  assert.match(r.stdout, /^Registered: True$/m);
  assert.match(r.stdout, /^Pending Reward: 0\.0000 PLM$/m);
  assert.match(r.stdout, /^Current Epoch: {2}0$/m);
  assert.match(r.stdout, /^AgentRegistry: {2}unavailable \(not configured\)$/m);
});

Deno.test("plumise status against a dead RPC prints unavailable lines and exits 1; bad inputs give clear errors", async () => {
  const key = Wallet.createRandom().privateKey;
  const env = {
    PLUMISE_PRIVATE_KEY: key,
    PLUMISE_RPC_URL: "http://127.0.0.1:9",
    ORACLE_API_URL: "http://127.0.0.1:9",
  };
  let r = await plumise(["status", "--json"], env);
  assert.equal(r.code, 1, r.stderr);
  const st = JSON.parse(r.stdout);
  assert.equal(st.online, false);
  assert.match(st.balanceWei.reason, /chain unavailable/);
  r = await plumise(["status"], env);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /^Online: {2}False/m);
  assert.match(r.stdout, /^Balance: unavailable \(chain down\)$/m);
  // the RPC's error once, on the Online line (before: the same error on seven lines)
  assert.equal(r.stdout.split("\n").filter((l) => /ECONNREFUSED/.test(l)).length, 1, r.stdout);
  assert.match(r.stdout, /^Oracle: +unavailable \(/m);

  // malformed key: exit 2, the key itself is never printed
  r = await plumise(["register"], { ...env, PLUMISE_PRIVATE_KEY: "0x1234zz" + "9".repeat(58) });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /PLUMISE_PRIVATE_KEY/);
  assert.ok(!r.stderr.includes("1234zz"));

  // wrong chain id: exit 2 naming both ids
  await using chain = await startTestChain({ chainId: 419561 });
  r = await plumise(["register"], { ...env, PLUMISE_RPC_URL: chain.rpcUrl, PLUMISE_CHAIN_ID: "41956" });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /CHAIN_ID_MISMATCH.*419561.*41956/);
});

Deno.test("plumise wallet new writes a 0600 keystore and prints only the address", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/ks.json`;
    const r = await plumise(["wallet", "new", "--keystore", path], {
      PLUMISE_KEYSTORE_PASSWORD: "correct horse",
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^0x[0-9a-fA-F]{40}\n$/);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const again = await plumise(["wallet", "address", "--keystore", path], {
      PLUMISE_KEYSTORE_PASSWORD: "correct horse",
    });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, r.stdout);
    const wrong = await plumise(["wallet", "address", "--keystore", path], {
      PLUMISE_KEYSTORE_PASSWORD: "nope!!",
    });
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /wrong password/);
    const exists = await plumise(["wallet", "new", "--keystore", path], {
      PLUMISE_KEYSTORE_PASSWORD: "x123456",
    });
    assert.equal(exists.code, 2);
    assert.match(exists.stderr, /already exists/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("plumise wallet new without --keystore: the data dir's keystore is the one the other commands use", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const env = { PLUMISE_DATA_DIR: `${dir}/data`, PLUMISE_KEYSTORE_PASSWORD: "correct horse" };
    const r = await plumise(["wallet", "new"], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^0x[0-9a-fA-F]{40}\n$/);
    assert.match(r.stderr, new RegExp(`keystore: ${dir}/data/keystore\\.json`));
    assert.match(r.stderr, /send this address a little PLM for gas, then run plumise serve$/m);
    // before: MISSING_PRIVATE_KEY, "no --keystore was given", for the wallet just made
    const again = await plumise(["wallet", "address"], env);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, r.stdout);
    const shown = await plumise(["config", "--json"], env);
    const { config } = JSON.parse(shown.stdout);
    assert.deepEqual(config.keystore, { value: `${dir}/data/keystore.json`, source: "auto" });
    // a key given wins over it
    const keyed = await plumise(["config", "--json"], {
      ...env,
      PLUMISE_PRIVATE_KEY: "0x" + "3c".repeat(32),
    });
    assert.equal(JSON.parse(keyed.stdout).config.keystore.value, null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("plumise serve --keystore on a terminal asks for the password", async () => {
  const hasScript = await new Deno.Command("script", { args: ["--version"] }).output().then(
    (o) => o.success,
    () => false,
  );
  if (!hasScript) return; // util-linux's script gives the process a terminal
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/ks.json`;
    assert.equal(
      (await plumise(["wallet", "new", "--keystore", path], { PLUMISE_KEYSTORE_PASSWORD: "right one" })).code,
      0,
    );
    const quote = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
    const argv = [
      Deno.execPath(),
      ...cliArgv(["serve", "--keystore", path, "--api-port", "0", "--port", "0"]),
    ];
    const child = new Deno.Command("script", {
      args: ["-qfec", argv.map(quote).join(" "), "/dev/null"],
      cwd: dir,
      clearEnv: true,
      env: cleanEnv({ PLUMISE_DATA_DIR: `${dir}/data`, PLUMISE_RPC_URL: "http://127.0.0.1:9" }),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // a liveness guard, not a timing: a node that never asks is killed and the test fails
    const guard = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const out = textReader(child.stdout);
    // before: KEYSTORE_PASSWORD_MISSING at once, "run on a terminal to be prompted", on a terminal
    assert.match(await out.until("Password of"), new RegExp(`Password of ${path}: `));
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode("wrong one\r"));
    await w.close();
    const said = await out.rest();
    const status = await child.status;
    clearTimeout(guard);
    await child.stderr.cancel();
    assert.match(said, /KEYSTORE_BAD_PASSWORD/, "the typed password was the one tried");
    assert.ok(!said.includes("wrong one"), "the password is not echoed");
    assert.equal(status.code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
