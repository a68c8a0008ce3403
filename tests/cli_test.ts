/** CLI contract: main.ts run as a subprocess with the binary's permission flags. */
import assert from "node:assert/strict";
import { SCHEMA } from "../lib/config/schema.ts";
import { VERSION } from "../lib/util/version.ts";
import { cleanEnv, cliArgv, runPlumise, textReader } from "./helpers/cli.ts";

const KEY = "0x" + "3c".repeat(32);

Deno.test("cli: --help lists the commands; every command's help shows the env var behind each flag", async () => {
  const top = await runPlumise(["--help"]);
  assert.equal(top.code, 0, top.stderr);
  for (const c of ["serve", "status", "config", "version", "generate", "swarm", "blocks", "bench"]) {
    assert.match(top.stdout, new RegExp(`^  ${c}\\b`, "m"));
  }
  const serve = await runPlumise(["serve", "--help"]);
  assert.equal(serve.code, 0, serve.stderr);
  const help = serve.stdout.replace(/\s+/g, " ");
  for (const spec of SCHEMA.filter((s) => s.flag && s.env)) {
    assert.ok(help.includes(`--${spec.flag}`), `serve --help lacks --${spec.flag}`);
    assert.ok(help.includes(`env ${spec.env}`), `serve --help lacks env ${spec.env}`);
  }
  for (
    const legacy of [
      "--model",
      "--private-key",
      "--rpc-url",
      "--chain-id",
      "--oracle-url",
      "--report-interval",
      "--num-blocks",
      "--host",
      "--port",
      "--agent-registry",
      "--reward-pool",
      "--device",
      "--tier",
    ]
  ) {
    assert.ok(help.includes(legacy), `serve --help lacks legacy flag ${legacy}`);
  }
});

Deno.test("cli: version", async () => {
  const r = await runPlumise(["version", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const v = JSON.parse(r.stdout);
  assert.equal(v.plumise, VERSION);
  assert.equal(v.deno, "2.9.6");
  const plain = await runPlumise(["--version"]);
  assert.equal(plain.stdout.trim(), VERSION);
});

Deno.test("cli: config --json reports each value's source (flag, env, .env, tier, default) and redacts the key", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${cwd}/.env`,
      `REPORT_INTERVAL=45\nMODEL_NAME=dot/model\nPLUMISE_PRIVATE_KEY=${KEY}\n`,
    );
    const r = await runPlumise(
      ["config", "--json", "--tier", "standard", "--rpc-url", "http://127.0.0.1:9"],
      {
        cwd,
        env: { PLUMISE_CHAIN_ID: "419561", MODEL_NAME: "env/model" },
      },
    );
    assert.equal(r.code, 0, r.stderr);
    const { config } = JSON.parse(r.stdout);
    assert.deepEqual(config.rpcUrl, { value: "http://127.0.0.1:9", source: "flag" });
    assert.deepEqual(config.chainId, { value: 419561, source: "env" });
    assert.deepEqual(config.model, { value: "env/model", source: "env" });
    assert.deepEqual(config.reportInterval, { value: 45, source: ".env" });
    assert.deepEqual(config.numBlocks, { value: 4, source: "tier" });
    assert.deepEqual(config.oracleUrl, { value: "http://localhost:15481", source: "default" });
    assert.deepEqual(config.privateKey, { value: "[redacted]", source: ".env" });
    assert.deepEqual(config.claimThresholdWei, { value: "1000000000000000000", source: "default" });
    for (const out of [r.stdout, r.stderr]) assert.ok(!out.includes("3c3c3c"), "key material in output");

    const text = await runPlumise(["config", "--env-file", `${cwd}/.env`]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^REPORT_INTERVAL\s+45\s+\(\.env\)$/m);
    assert.match(text.stdout, /^PLUMISE_PRIVATE_KEY\s+\[redacted\]\s+\(\.env\)$/m);
    assert.ok(!text.stdout.includes("3c3c3c"));
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("cli: a pipe as --env-file is read; with no writer the process says so and SIGTERM ends it", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    const fifo = `${cwd}/settings.env`;
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output().catch(() => undefined);
    if (!mk?.success) return; // no mkfifo: nothing to test
    const spawn = (args = ["config", "--json", "--env-file", fifo]) =>
      new Deno.Command(Deno.execPath(), {
        args: cliArgv(args),
        cwd,
        clearEnv: true,
        env: cleanEnv(),
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    const reader = spawn();
    await Deno.writeTextFile(fifo, "REPORT_INTERVAL=45\n");
    const ok = await reader.output();
    assert.equal(ok.code, 0, new TextDecoder().decode(ok.stderr));
    const { config } = JSON.parse(new TextDecoder().decode(ok.stdout));
    assert.deepEqual(config.reportInterval, { value: 45, source: ".env" });

    // nobody writes: before, the process blocked in open() and only SIGKILL ended it
    const stuck = spawn();
    // a liveness guard, not a timing: a process that hangs or ignores SIGTERM is killed and the test fails
    const guard = setTimeout(() => stuck.kill("SIGKILL"), 60_000);
    const stderr = textReader(stuck.stderr);
    assert.match(
      await stderr.until("waiting for a writer"),
      /waiting for a writer on the pipe .*settings\.env \(Ctrl-C to stop\)/,
    );
    stuck.kill("SIGTERM");
    const status = await stuck.status;
    clearTimeout(guard);
    const said = await stderr.rest();
    await stuck.stdout.cancel();
    assert.equal(status.signal, null, "ended by itself, not killed");
    assert.equal(status.code, 1);
    assert.match(said, /error \[INTERRUPTED\]: interrupted by a signal/);

    // a command that reads no settings leaves a pipe at ./.env alone (neither waits nor drains it)
    await Deno.rename(fifo, `${cwd}/.env`);
    const version = spawn(["version"]);
    const guard2 = setTimeout(() => version.kill("SIGKILL"), 60_000);
    const v = await version.output();
    clearTimeout(guard2);
    assert.equal(v.code, 0, new TextDecoder().decode(v.stderr));
    assert.match(new TextDecoder().decode(v.stdout), /plumise/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("cli: a misspelt setting is a warning naming the one it likely meant, not silence", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${cwd}/.env`, "API_PROT=9999\n");
    const r = await runPlumise(["config", "--json"], { cwd, env: { PLUMISE_TEIR: "pro" } });
    assert.equal(r.code, 0, r.stderr);
    // before: nothing, and the defaults were used
    assert.match(
      r.stderr,
      /warning: PLUMISE_TEIR in the environment is not a plumise setting .*did you mean PLUMISE_TIER\?/,
    );
    assert.match(r.stderr, /warning: API_PROT in \.env is not a plumise setting .*did you mean API_PORT\?/);
    assert.deepEqual(JSON.parse(r.stdout).config.apiPort, { value: 31331, source: "default" });
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("cli: a data dir Deno keeps from the node is named as such, not 'run again with --allow-all'", async () => {
  if (Deno.build.os !== "linux") return;
  const r = await runPlumise([
    "serve",
    "--offline",
    "--api-port",
    "0",
    "--port",
    "0",
    "--direct-port",
    "0",
    "--data-dir",
    "/proc/plumise",
  ]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /DATA_DIR_UNUSABLE.*\/proc\/plumise: the runtime does not let the node write there/);
  assert.doesNotMatch(r.stderr, /--allow-all/);
});

Deno.test("cli: config --tier network: qwen/qwen3-32b at int8, as many blocks as this machine's memory holds", async () => {
  const r = await runPlumise(["config", "--json", "--tier", "network"]);
  if (r.code === 2) {
    // a machine with under ~1.5 GiB available cannot hold one block; the refusal says so
    assert.match(r.stderr, /--tier=network: not one block of qwen\/qwen3-32b/);
    return;
  }
  assert.equal(r.code, 0, r.stderr);
  const { config, tierReason } = JSON.parse(r.stdout);
  assert.deepEqual(config.tier, { value: "network", source: "flag" });
  assert.deepEqual(config.model, { value: "qwen/qwen3-32b", source: "tier" });
  assert.deepEqual(config.weights, { value: "int8", source: "tier" });
  assert.equal(config.numBlocks.source, "auto");
  assert.ok(config.numBlocks.value >= 1 && config.numBlocks.value <= 64, String(config.numBlocks.value));
  assert.match(
    tierReason,
    new RegExp(`^tier network: ${config.numBlocks.value} of qwen/qwen3-32b's 64 blocks`),
  );
  const text = await runPlumise(["config", "--tier", "network", "--num-blocks", "3"]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^MODEL_NAME\s+qwen\/qwen3-32b\s+\(tier\)$/m);
  assert.match(text.stdout, /^NUM_BLOCKS\s+3\s+\(flag\)$/m);
});

Deno.test("cli: bad flag → exit 2 with a message; bad values → exit 2 listing every problem", async () => {
  const unknown = await runPlumise(["serve", "--no-such-flag"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option '--no-such-flag'/);
  const bad = await runPlumise(["config", "--report-interval", "5", "--api-port", "99999"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /2 configuration problems/);
  assert.match(bad.stderr, /--report-interval=5: must be 10–300 seconds/);
  assert.match(bad.stderr, /--api-port=99999: must be 0–65535/);
  assert.match(bad.stderr, /^hint: /m);
  const missing = await runPlumise(["config", "--env-file", "/nonexistent/.env"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /ENV_FILE_MISSING.*\/nonexistent\/\.env: no such file/);
});

Deno.test("cli: DEVICE=cuda is refused (exit 2) until an engine uses a GPU; cpu and auto are accepted", async () => {
  const cuda = await runPlumise(["serve", "--offline"], { env: { DEVICE: "cuda" } });
  assert.equal(cuda.code, 2);
  assert.match(cuda.stderr, /DEVICE=cuda: no engine of this build computes on a GPU; use auto or cpu/);
  const cpu = await runPlumise(["config", "--json", "--device", "cpu"]);
  assert.equal(cpu.code, 0, cpu.stderr);
  assert.deepEqual(JSON.parse(cpu.stdout).config.device, { value: "cpu", source: "flag" });
});

Deno.test("cli: serve without a key → exit 2 naming PLUMISE_PRIVATE_KEY; a bad key is never echoed", async () => {
  const r = await runPlumise(["serve"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /PLUMISE_PRIVATE_KEY/);
  const badKey = "0x" + "7d".repeat(30);
  const b = await runPlumise(["serve", "-v"], { env: { PLUMISE_PRIVATE_KEY: badKey } });
  assert.equal(b.code, 2);
  assert.match(b.stderr, /PLUMISE_PRIVATE_KEY=\[redacted, 62 characters\]: must be 32 bytes of hex/);
  assert.ok(!b.stderr.includes("7d7d7d") && !b.stdout.includes("7d7d7d"), "key material in output");
});
