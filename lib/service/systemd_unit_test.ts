import assert from "node:assert/strict";
import { renderUnit, STOP_MARGIN_SECONDS, type UnitOptions } from "./systemd_unit.ts";

async function run(cmd: string, args: string[], cwd?: string): Promise<{ code: number; out: string }> {
  const o = await new Deno.Command(cmd, {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { SYSTEMD_COLORS: "0" },
  })
    .output();
  return { code: o.code, out: new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr) };
}

async function localSystemdVersion(): Promise<number | undefined> {
  try {
    const r = await run("systemd-analyze", ["--version"]);
    return Number(r.out.match(/systemd (\d+)/)?.[1]) || undefined;
  } catch {
    return undefined;
  }
}

async function fixture(options: Partial<UnitOptions> = {}) {
  const dir = await Deno.makeTempDir();
  const binary = `${dir}/plumise`;
  await Deno.writeTextFile(binary, "#!/bin/sh\n", { mode: 0o755 });
  await Deno.writeTextFile(`${dir}/keystore.json`, "{}");
  await Deno.writeTextFile(`${dir}/plumise.env`, "PLUMISE_TIER=lite\n", { mode: 0o600 });
  const unitDir = `${dir}/units`;
  await Deno.mkdir(unitDir);
  const unit = renderUnit({
    binary,
    envFile: `${dir}/plumise.env`,
    keystore: `${dir}/keystore.json`,
    shutdownGraceSeconds: 10,
    systemdVersion: await localSystemdVersion(),
    writtenBy: "test",
    ...options,
  });
  await Deno.writeTextFile(`${unitDir}/plumise.service`, unit);
  return { dir, unit, unitPath: `${unitDir}/plumise.service` };
}

Deno.test("systemd unit: systemd-analyze verify is clean and the exposure is at most 2.5", async () => {
  if (Deno.build.os !== "linux") return;
  const version = await localSystemdVersion();
  assert.ok(version, "systemd-analyze is missing: apt-get install systemd (.ci/run does)");
  const { dir, unitPath } = await fixture();
  try {
    const verify = await run("systemd-analyze", ["verify", unitPath], dir);
    assert.equal(verify.code, 0, verify.out);
    assert.equal(verify.out.trim(), "", `verify is not clean:\n${verify.out}`);
    const sec = await run("systemd-analyze", ["security", "--offline=true", "--no-pager", unitPath], dir);
    const m = sec.out.match(/Overall exposure level for plumise\.service: (\d+(?:\.\d+)?)/);
    assert.ok(m, sec.out);
    const exposure = Number(m[1]);
    assert.ok(exposure <= 2.5, `exposure ${exposure} > 2.5:\n${sec.out}`);
    // what the node needs stays allowed
    assert.match(sec.out, /✗ MemoryDenyWriteExecute=/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("systemd unit: a binary path with '%' is not expanded by systemd (verify finds the binary)", async () => {
  if (Deno.build.os !== "linux") return;
  assert.ok(
    await localSystemdVersion(),
    "systemd-analyze is missing: apt-get install systemd (.ci/run does)",
  );
  const dir = await Deno.makeTempDir();
  try {
    // systemd expands %v (the kernel release) in ExecStart= unless it is written %%v
    await Deno.mkdir(`${dir}/plumise%v`);
    const { unit, unitPath, dir: fixtureDir } = await fixture({ binary: `${dir}/plumise%v/plumise` });
    await Deno.writeTextFile(`${dir}/plumise%v/plumise`, "#!/bin/sh\n", { mode: 0o755 });
    assert.match(unit, /^ExecStart="[^"]*\/plumise%%v\/plumise" serve$/m);
    const verify = await run("systemd-analyze", ["verify", unitPath], fixtureDir);
    // before: "Command .../plumise<kernel release>/plumise is not executable: No such file or directory"
    assert.equal(verify.out.trim(), "", `verify is not clean:\n${verify.out}`);
    await Deno.remove(fixtureDir, { recursive: true });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The system calls of filter groups, nested groups expanded. */
async function expand(groups: string[], seen = new Set<string>()): Promise<Set<string>> {
  const out = new Set<string>();
  for (const g of groups) {
    if (!g.startsWith("@")) {
      out.add(g);
      continue;
    }
    if (seen.has(g)) continue;
    seen.add(g);
    const listed = (await run("systemd-analyze", ["syscall-filter", g])).out.split("\n")
      .map((l) => l.trim()).filter((l) => l && !l.startsWith("#") && l !== g);
    for (const c of await expand(listed, seen)) out.add(c);
  }
  return out;
}

Deno.test("systemd unit: the syscalls and sockets the node uses are allowed", async () => {
  if (Deno.build.os !== "linux") return;
  const { dir, unit } = await fixture();
  try {
    const allowed = await expand(unit.match(/^SystemCallFilter=(@[^~\n]+)$/m)![1].split(/\s+/));
    const denied = await expand(unit.match(/^SystemCallFilter=~(.+)$/m)![1].split(/\s+/));
    for (const call of ["sched_setaffinity", "sched_getaffinity", "madvise", "mmap", "mprotect", "statfs"]) {
      assert.ok(allowed.has(call), `${call} is not in the allowed set`);
      assert.ok(!denied.has(call), `${call} is denied`);
    }
    for (
      const call of ["socket", "sendto", "recvmsg", "bind", "listen", "accept4", "connect", "epoll_wait"]
    ) {
      assert.ok(allowed.has(call) && !denied.has(call), call);
    }
    assert.match(unit, /^RestrictAddressFamilies=.*\bAF_NETLINK\b/m); // getifaddrs: socket(AF_NETLINK)
    assert.doesNotMatch(unit, /^(MemoryDenyWriteExecute|ProcSubset|NoExecPaths|IPAddressDeny)=/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("systemd unit: no secret on the command line, stop timeout beyond the grace, restart with back-off", () => {
  const base = {
    binary: "/usr/local/bin/plumise",
    envFile: "/etc/plumise/plumise.env",
    keystore: "/etc/plumise/keystore.json",
    writtenBy: "0.1.0",
  };
  const unit = renderUnit({ ...base, shutdownGraceSeconds: 10, systemdVersion: 252 });
  assert.match(unit, /^ExecStart=\/usr\/local\/bin\/plumise serve$/m);
  assert.match(unit, /^EnvironmentFile=\/etc\/plumise\/plumise\.env$/m);
  assert.match(unit, /^LoadCredential=keystore:\/etc\/plumise\/keystore\.json$/m);
  assert.match(unit, /^Environment=PLUMISE_KEYSTORE=%d\/keystore$/m);
  assert.match(
    unit,
    /^Environment=PLUMISE_DATA_DIR=%S\/plumise HF_HOME=%C\/plumise\/huggingface XDG_CACHE_HOME=%C/m,
  );
  assert.match(unit, /^StateDirectory=plumise$/m);
  // the node's own directory: `serve` reads ./.env, and `/` may hold somebody else's
  assert.match(unit, /^WorkingDirectory=%S\/plumise$/m);
  assert.match(unit, /^CacheDirectory=plumise$/m);
  assert.match(unit, /^DynamicUser=yes$/m);
  assert.match(unit, /^Restart=on-failure$/m);
  assert.match(unit, /^RestartSec=15s$/m);
  assert.match(unit, /^RestartPreventExitStatus=2$/m);
  assert.doesNotMatch(unit, /PRIVATE_KEY|PASSWORD/);
  assert.match(unit, /^TimeoutStopSec=30s$/m);
  const slow = renderUnit({ ...base, shutdownGraceSeconds: 300, systemdVersion: 256 });
  assert.match(slow, new RegExp(`^TimeoutStopSec=${300 + STOP_MARGIN_SECONDS}s$`, "m"));
  assert.match(slow, /^RestartSteps=10$/m);
  assert.match(slow, /^RestartMaxDelaySec=5min$/m);
  const noKeystore = renderUnit({ ...base, keystore: undefined, shutdownGraceSeconds: 10 });
  assert.doesNotMatch(noKeystore, /LoadCredential|PLUMISE_KEYSTORE/);
  // odd paths are quoted or refused
  assert.match(
    renderUnit({ ...base, binary: "/opt/my apps/plumise", shutdownGraceSeconds: 10 }),
    /^ExecStart="\/opt\/my apps\/plumise" serve$/m,
  );
  assert.throws(
    () => renderUnit({ ...base, binary: "plumise", shutdownGraceSeconds: 10 }),
    /is not absolute/,
  );
  assert.throws(
    () => renderUnit({ ...base, keystore: "/a b/k.json", shutdownGraceSeconds: 10 }),
    /LoadCredential/,
  );
});
