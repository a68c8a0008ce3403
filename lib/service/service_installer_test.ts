import assert from "node:assert/strict";
import { ConfigError, PlumiseError } from "../errors.ts";
import {
  applyInstall,
  type CommandResult,
  planInstall,
  SERVICE_ERROR_CODES,
  type ServiceHost,
  serviceStatus,
  uninstall,
} from "./service_installer.ts";
import { hiddenFromUnit } from "./systemd_unit.ts";

const KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

async function fakeHost(
  answers: (args: string[]) => CommandResult = () => ({ code: 0, stdout: "", stderr: "" }),
  { noSystemd = false, notBooted = false } = {},
) {
  const root = await Deno.makeTempDir();
  const calls: string[][] = [];
  const host: ServiceHost = {
    root,
    systemctl: (args) => {
      calls.push(args);
      if (noSystemd) return Promise.reject(new Deno.errors.NotFound("Failed to spawn 'systemctl'"));
      if (args[0] === "--version") {
        return Promise.resolve({ code: 0, stdout: "systemd 252 (252.38)\n", stderr: "" });
      }
      return Promise.resolve(answers(args));
    },
  };
  const binary = `${root}/usr/local/bin/plumise`;
  await Deno.mkdir(`${root}/usr/local/bin`, { recursive: true });
  if (!noSystemd && !notBooted) await Deno.mkdir(`${root}/run/systemd/system`, { recursive: true });
  await Deno.writeTextFile(binary, "#!/bin/sh\n", { mode: 0o755 });
  const keystore = `${root}/keystore.json`;
  await Deno.writeTextFile(keystore, "{}");
  return { root, host, calls: () => calls.filter((c) => c[0] !== "--version"), binary, keystore };
}

const mode = async (p: string) => ((await Deno.stat(p)).mode! & 0o777).toString(8);

Deno.test("service install: env file 0600 with the secret, unit 0644, reload, enable, restart", async () => {
  const f = await fakeHost();
  try {
    const plan = await planInstall(f.host, {
      binary: f.binary,
      tier: "lite",
      keystore: f.keystore,
      keystorePassword: "correct horse",
    });
    assert.equal(plan.envFilePath, "/etc/plumise/plumise.env");
    assert.deepEqual(plan.envKeys.sort(), ["PLUMISE_KEYSTORE_PASSWORD", "PLUMISE_TIER"]);
    assert.ok(!plan.unit.includes("correct horse"), "no secret in the unit");
    assert.match(plan.unit, new RegExp(`^LoadCredential=keystore:${f.keystore}$`, "m"));
    // planning touched nothing
    assert.equal(await Deno.stat(`${f.root}/etc`).catch(() => undefined), undefined);
    assert.deepEqual(f.calls(), []);

    await applyInstall(f.host, plan);
    const env = `${f.root}/etc/plumise/plumise.env`;
    const unit = `${f.root}/etc/systemd/system/plumise.service`;
    assert.equal(await mode(env), "600");
    assert.equal(await mode(unit), "644");
    assert.match(await Deno.readTextFile(env), /^PLUMISE_KEYSTORE_PASSWORD='correct horse'$/m);
    assert.match(await Deno.readTextFile(env), /^PLUMISE_TIER=lite$/m);
    assert.equal(await Deno.readTextFile(unit), plan.unit);
    assert.deepEqual(f.calls(), [["daemon-reload"], ["enable", "plumise.service"], [
      "restart",
      "plumise.service",
    ]]);
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});

Deno.test("service install again: keeps the operator's lines and the keystore; switching to a raw key", async () => {
  const f = await fakeHost();
  try {
    await applyInstall(
      f.host,
      await planInstall(f.host, {
        binary: f.binary,
        tier: "lite",
        keystore: f.keystore,
        keystorePassword: "pw-123",
      }),
    );
    const env = `${f.root}/etc/plumise/plumise.env`;
    await Deno.writeTextFile(
      env,
      (await Deno.readTextFile(env)) + "# mine\nPLUMISE_RPC_URL=http://10.0.0.5:26902\n",
    );
    // an upgrade: no --keystore, no password: both kept
    const again = await planInstall(f.host, { binary: f.binary, tier: "standard" });
    assert.match(again.unit, new RegExp(`^LoadCredential=keystore:${f.keystore}$`, "m"));
    assert.match(again.envText, /^PLUMISE_TIER=standard$/m);
    assert.match(again.envText, /^PLUMISE_KEYSTORE_PASSWORD=pw-123$/m);
    assert.match(again.envText, /^# mine\nPLUMISE_RPC_URL=http:\/\/10\.0\.0\.5:26902$/m);
    await applyInstall(f.host, again);
    assert.equal(await mode(env), "600");

    // a raw key instead, the keystore's unit still installed: no keystore hand-in, no password left
    // behind (before, the unit's keystore was kept and the key dropped)
    const raw = await planInstall(f.host, { binary: f.binary, privateKey: KEY });
    assert.match(raw.envText, new RegExp(`^PLUMISE_PRIVATE_KEY=${KEY}$`, "m"));
    assert.doesNotMatch(raw.envText, /PLUMISE_KEYSTORE_PASSWORD/);
    assert.doesNotMatch(raw.unit, /LoadCredential/);
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});

Deno.test("service install: bad input is refused before anything is written", async () => {
  const f = await fakeHost();
  const code = (c: string) => (err: unknown) => err instanceof ConfigError && err.code === c;
  try {
    await assert.rejects(planInstall(f.host, { binary: f.binary }), (err) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.code, SERVICE_ERROR_CODES.NO_WALLET);
      assert.match(err.hint, /plumise wallet new --keystore/);
      return true;
    });
    await assert.rejects(
      planInstall(f.host, { binary: `${f.root}/nope`, privateKey: KEY }),
      code(SERVICE_ERROR_CODES.BINARY_INVALID),
    );
    await assert.rejects(
      planInstall(f.host, { binary: "plumise", privateKey: KEY }),
      code(SERVICE_ERROR_CODES.BINARY_INVALID),
    );
    await assert.rejects(
      planInstall(f.host, { binary: f.binary, tier: "mega", privateKey: KEY }),
      code(SERVICE_ERROR_CODES.CONFIG_INVALID),
    );
    await assert.rejects(
      planInstall(f.host, { binary: f.binary, keystore: `${f.root}/missing.json`, keystorePassword: "x" }),
      code(SERVICE_ERROR_CODES.KEYSTORE_INVALID),
    );
    await assert.rejects(planInstall(f.host, { binary: f.binary, keystore: f.keystore }), (err) => {
      assert.ok(err instanceof ConfigError && err.code === SERVICE_ERROR_CODES.NO_WALLET);
      assert.match(err.message, /no password for the keystore/);
      return true;
    });
    // a bad setting already in the env file: caught now, not in a restart loop
    await Deno.mkdir(`${f.root}/etc/plumise`, { recursive: true });
    await Deno.writeTextFile(`${f.root}/etc/plumise/plumise.env`, "API_PORT=99999\n");
    await assert.rejects(planInstall(f.host, { binary: f.binary, privateKey: KEY }), (err) => {
      assert.ok(err instanceof ConfigError && err.code === SERVICE_ERROR_CODES.CONFIG_INVALID);
      assert.match(err.message, /API_PORT=99999/);
      return true;
    });
    assert.deepEqual(f.calls(), []);
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});

Deno.test("service install: a systemctl failure says what systemd said", async () => {
  const f = await fakeHost((args) =>
    args[0] === "restart"
      ? { code: 1, stdout: "", stderr: "Job for plumise.service failed because the control process exited" }
      : { code: 0, stdout: "", stderr: "" }
  );
  try {
    const plan = await planInstall(f.host, { binary: f.binary, privateKey: KEY });
    await assert.rejects(applyInstall(f.host, plan), (err) => {
      assert.ok(err instanceof PlumiseError && err.code === SERVICE_ERROR_CODES.SYSTEMCTL_FAILED);
      assert.match(err.message, /systemctl restart plumise\.service failed \(exit 1\): Job for plumise/);
      assert.match(err.hint, /journalctl -u plumise\.service/);
      assert.ok(!err.message.includes(KEY));
      return true;
    });
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});

Deno.test("service install: without systemctl nothing is written", async () => {
  const f = await fakeHost(undefined, { noSystemd: true });
  try {
    const plan = await planInstall(f.host, { binary: f.binary, privateKey: KEY });
    await assert.rejects(applyInstall(f.host, plan), (err) => {
      assert.ok(err instanceof PlumiseError && err.code === SERVICE_ERROR_CODES.SYSTEMCTL_FAILED);
      assert.match(err.message, /systemctl --version: .*systemctl/);
      assert.match(err.hint, /needs systemd/);
      return true;
    });
    assert.equal(await Deno.stat(`${f.root}/etc`).catch(() => undefined), undefined, "no env file, no unit");
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});

Deno.test("service install: systemctl without a running systemd (a container) writes nothing", async () => {
  const f = await fakeHost(undefined, { notBooted: true });
  try {
    const plan = await planInstall(f.host, { binary: f.binary, privateKey: KEY });
    // before: the unit and the env file (with the secret) were written, then daemon-reload failed
    await assert.rejects(applyInstall(f.host, plan), (err) => {
      assert.ok(err instanceof PlumiseError && err.code === SERVICE_ERROR_CODES.SYSTEMCTL_FAILED);
      assert.match(err.message, /systemd is not running/);
      assert.match(err.hint, /run `plumise serve` under/);
      return true;
    });
    assert.equal(await Deno.stat(`${f.root}/etc`).catch(() => undefined), undefined);
    assert.deepEqual(f.calls(), []);
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});

Deno.test("service uninstall and status", async () => {
  const f = await fakeHost((args) =>
    args[0] === "show"
      ? {
        code: 0,
        stdout:
          "LoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\nMainPID=4242\n" +
          "NRestarts=0\n",
        stderr: "",
      }
      : { code: 0, stdout: "", stderr: "" }
  );
  try {
    const none = await serviceStatus(f.host);
    assert.equal(none.installed, false);
    assert.ok(none.problems.some((p) => /not installed/.test(p)));

    await applyInstall(f.host, await planInstall(f.host, { binary: f.binary, privateKey: KEY }));
    const ok = await serviceStatus(f.host);
    assert.equal(ok.installed, true);
    assert.equal(ok.active, true);
    assert.equal(ok.properties.MainPID, "4242");
    assert.equal(ok.envFileMode, "0600");
    assert.deepEqual(ok.problems, []);
    await Deno.chmod(`${f.root}/etc/plumise/plumise.env`, 0o644);
    assert.ok((await serviceStatus(f.host)).problems.some((p) => /readable by others .*chmod 600/.test(p)));

    await Deno.mkdir(`${f.root}/var/lib/private/plumise`, { recursive: true });
    const kept = await uninstall(f.host);
    assert.deepEqual(kept.removed, ["/etc/systemd/system/plumise.service"]);
    assert.ok(kept.kept.includes("/etc/plumise/plumise.env"));
    assert.ok(await Deno.stat(`${f.root}/etc/plumise/plumise.env`));
    assert.deepEqual(f.calls().filter((c) => c[0] !== "show").slice(-2), [
      ["disable", "--now", "plumise.service"],
      ["daemon-reload"],
    ]);
    // another file named by --env-file (a checkout's .env with its wallet key) is never removed
    await Deno.writeTextFile(`${f.root}/home.env`, "PLUMISE_PRIVATE_KEY=...\n");
    const other = await uninstall(f.host, { purge: true, envFile: "/home.env" });
    assert.ok(!other.removed.includes("/home.env"));
    assert.ok(other.kept.some((k) => k.startsWith("/home.env (not the env file")));
    assert.ok(await Deno.stat(`${f.root}/home.env`));
    await Deno.mkdir(`${f.root}/var/lib/private/plumise`, { recursive: true });
    const purged = await uninstall(f.host, { purge: true });
    assert.deepEqual(purged.removed, ["/etc/plumise/plumise.env", "/var/lib/private/plumise"]);
    assert.equal(await Deno.stat(`${f.root}/var/lib/private/plumise`).catch(() => undefined), undefined);
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});

Deno.test("service install: odd paths and tiers are typed errors before anything is written; any tier name works", async () => {
  const f = await fakeHost();
  try {
    const code = (c: string, re: RegExp) => (e: unknown) =>
      e instanceof ConfigError && e.code === c && re.test(e.message);
    // a binary path systemd cannot run: $ (not unescaped in ExecStart), quotes, backslashes
    for (const name of ["dollar$HOME", 'q"uote', "back\\slash"]) {
      const bin = `${f.root}/${name}`;
      await Deno.writeTextFile(bin, "#!/bin/sh\n", { mode: 0o755 });
      await assert.rejects(
        planInstall(f.host, { binary: bin, privateKey: KEY }),
        code("SERVICE_BINARY_INVALID", /has characters systemd cannot run/),
        name,
      );
    }
    // a keystore path LoadCredential= cannot name: was a raw Error with "this is unexpected"
    const spaced = `${f.root}/a b.json`;
    await Deno.writeTextFile(spaced, "{}");
    await assert.rejects(
      planInstall(f.host, { binary: f.binary, keystore: spaced, keystorePassword: "pw" }),
      code("SERVICE_KEYSTORE_INVALID", /holds ':', a space or a control character/),
    );
    // an env file that is a directory: was a raw "Is a directory"
    await Deno.mkdir(`${f.root}/etc/plumise/dir.env`, { recursive: true });
    await assert.rejects(
      planInstall(f.host, { binary: f.binary, privateKey: KEY, envFile: "/etc/plumise/dir.env" }),
      code("SERVICE_CONFIG_INVALID", /cannot read .*dir\.env/),
    );
    // every tier the schema knows, in any case
    for (const tier of ["network", "LITE"]) {
      const plan = await planInstall(f.host, {
        binary: f.binary,
        privateKey: KEY,
        tier,
        availableMemoryBytes: 64 * 2 ** 30,
      });
      assert.match(plan.envText, new RegExp(`^PLUMISE_TIER=${tier.toLowerCase()}$`, "m"));
    }
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});

Deno.test("service install: a keystore named in the env file is checked and handed in like --keystore", async () => {
  const f = await fakeHost();
  try {
    await Deno.mkdir(`${f.root}/etc/plumise`, { recursive: true });
    const env = `${f.root}/etc/plumise/plumise.env`;
    await Deno.writeTextFile(env, "PLUMISE_KEYSTORE=/nonexistent/ks.json\nPLUMISE_KEYSTORE_PASSWORD=pw123\n");
    await assert.rejects(
      planInstall(f.host, { binary: f.binary }),
      (e: unknown) =>
        e instanceof ConfigError && e.code === "SERVICE_KEYSTORE_INVALID" &&
        /PLUMISE_KEYSTORE in/.test(e.message),
    );
    await Deno.writeTextFile(env, `PLUMISE_KEYSTORE=${f.keystore}\nPLUMISE_KEYSTORE_PASSWORD=pw123\n`);
    const plan = await planInstall(f.host, { binary: f.binary });
    assert.match(plan.unit, new RegExp(`^LoadCredential=keystore:${f.keystore}$`, "m"));
    assert.doesNotMatch(plan.envText, /^PLUMISE_KEYSTORE=/m);
    assert.match(plan.envText, /^PLUMISE_KEYSTORE_PASSWORD=pw123$/m);
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});

Deno.test("service uninstall --purge: without --env-file, the installed unit's own env file goes", async () => {
  const f = await fakeHost();
  try {
    await applyInstall(
      f.host,
      await planInstall(f.host, { binary: f.binary, privateKey: KEY, envFile: "/etc/plumise/custom.env" }),
    );
    // status reads the unit's own env file too (the CLI passes no --env-file unless given)
    assert.equal((await serviceStatus(f.host)).envFile, "/etc/plumise/custom.env");
    const purged = await uninstall(f.host, { purge: true });
    assert.ok(purged.removed.includes("/etc/plumise/custom.env"), JSON.stringify(purged));
    assert.equal(await Deno.stat(`${f.root}/etc/plumise/custom.env`).catch(() => undefined), undefined);
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});

Deno.test("service install: a binary the sandbox hides (home, tmp) is refused before anything is written", async () => {
  for (
    const [path, dir] of [["/home/ann/plumise", "/home"], ["/root/plumise", "/root"], [
      "/tmp/x/plumise",
      "/tmp",
    ]]
  ) {
    assert.equal(hiddenFromUnit(path), dir, path);
  }
  for (const path of ["/usr/local/bin/plumise", "/opt/plumise/plumise", "/homestead/plumise", "/tmpfs/p"]) {
    assert.equal(hiddenFromUnit(path), undefined, path);
  }
  const f = await fakeHost();
  try {
    // on the real system (root /) the binary's own path counts, symlinks resolved: here it is in /tmp
    const tmpBinary = await Deno.makeTempFile({ dir: "/tmp", prefix: "plumise-bin-" });
    try {
      const plan = await planInstall({ ...f.host, root: "/" }, { binary: tmpBinary, privateKey: KEY });
      assert.deepEqual(plan.binaryHidden, { path: await Deno.realPath(tmpBinary), dir: "/tmp" });
      // written through the fake root if it were not refused: nothing there afterwards
      await assert.rejects(applyInstall(f.host, plan), (err) => {
        assert.ok(err instanceof ConfigError && err.code === SERVICE_ERROR_CODES.BINARY_INVALID);
        assert.match(err.message, /lies under \/tmp, which the service's sandbox hides/);
        assert.match(err.hint, /\/usr\/local\/bin\/plumise/);
        return true;
      });
      assert.equal(await Deno.stat(`${f.root}/etc`).catch(() => undefined), undefined);
      assert.deepEqual(f.calls(), []);
    } finally {
      await Deno.remove(tmpBinary);
    }
    // a test's root of its own: its temporary binaries are not the system's
    const plan = await planInstall(f.host, { binary: f.binary, privateKey: KEY });
    assert.equal(plan.binaryHidden, undefined);
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
});
