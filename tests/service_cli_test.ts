/** `plumise service install --dry-run` through the CLI with the binary's permissions. */
import assert from "node:assert/strict";
import { createKeystore } from "../lib/chain/wallet.ts";
import { hiddenFromUnit } from "../lib/service/systemd_unit.ts";
import { runPlumise } from "./helpers/cli.ts";

Deno.test("cli: service install --dry-run prints the unit, names the env keys, hides the secret, writes nothing", async () => {
  if (Deno.build.os !== "linux") return;
  const dir = await Deno.makeTempDir();
  try {
    const binary = `${dir}/plumise`;
    await Deno.writeTextFile(binary, "#!/bin/sh\n", { mode: 0o755 });
    const keystore = `${dir}/keystore.json`;
    const password = "dry-run-secret-pw";
    const { address } = await createKeystore(keystore, password, { scryptN: 16 });
    const envFile = `${dir}/etc/plumise.env`;
    const before = await Deno.stat("/etc/systemd/system/plumise.service").then(() => true, () => false);
    const r = await runPlumise(
      [
        "service",
        "install",
        "--dry-run",
        "--binary",
        binary,
        "--tier",
        "lite",
        "--keystore",
        keystore,
        "--env-file",
        envFile,
      ],
      { env: { PLUMISE_KEYSTORE_PASSWORD: password } },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\[Service\]$/m);
    assert.match(r.stdout, new RegExp(`^ExecStart=${binary} serve$`, "m"));
    assert.match(r.stdout, new RegExp(`^EnvironmentFile=${envFile}$`, "m"));
    assert.match(r.stdout, new RegExp(`^LoadCredential=keystore:${keystore}$`, "m"));
    assert.match(r.stderr, new RegExp(`agent ${address}`));
    assert.match(
      r.stderr,
      /\(dry run\) would write \/etc\/systemd\/system\/plumise\.service and .*mode 0600; keys: .*PLUMISE_TIER/,
    );
    assert.ok(!(r.stdout + r.stderr).includes(password), "the password is never printed");
    // a temporary directory is one the service's sandbox hides: the dry run says a real install would fail
    if (hiddenFromUnit(await Deno.realPath(binary))) {
      assert.match(r.stderr, /warning: install would fail: the binary .* lies under \/\w+/);
      assert.match(r.stderr, /hint: copy it out first/);
    }
    assert.equal(await Deno.stat(envFile).catch(() => undefined), undefined, "nothing written");
    assert.equal(
      await Deno.stat("/etc/systemd/system/plumise.service").then(() => true, () => false),
      before,
    );

    const json = await runPlumise(
      ["service", "install", "--dry-run", "--json", "--binary", binary, "--env-file", envFile],
      { env: { PLUMISE_PRIVATE_KEY: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d" } },
    );
    assert.equal(json.code, 0, json.stderr);
    const j = JSON.parse(json.stdout);
    assert.deepEqual(j.envKeys, ["PLUMISE_PRIVATE_KEY"]);
    assert.deepEqual(j.systemctl, [["daemon-reload"], ["enable", "plumise.service"], [
      "restart",
      "plumise.service",
    ]]);
    assert.ok(!json.stdout.includes("59c6995e998f97a5"), "the key is never printed");

    // no wallet: a usage error naming the fix
    const none = await runPlumise([
      "service",
      "install",
      "--dry-run",
      "--binary",
      binary,
      "--env-file",
      envFile,
    ]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /SERVICE_NO_WALLET/);
    assert.match(none.stderr, /plumise wallet new --keystore/);
    // from a checkout there is no binary to default to
    const noBinary = await runPlumise(["service", "install", "--dry-run", "--env-file", envFile], {
      env: { PLUMISE_PRIVATE_KEY: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d" },
    });
    assert.equal(noBinary.code, 2);
    assert.match(noBinary.stderr, /--binary/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
