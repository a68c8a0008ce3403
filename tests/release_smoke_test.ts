/**
 * The release workflow's smoke script, run here against a stand-in "binary" (a wrapper that runs
 * main.ts with the binary's permissions): the same commands and checks the compiled binary gets
 * on its runner.
 */
import assert from "node:assert/strict";
import { releaseSmoke } from "../scripts/release_smoke.ts";
import { hostTarget } from "../scripts/compile_targets.ts";
import { cliArgv } from "./helpers/cli.ts";

Deno.test("release smoke: version, doctor --offline and blocks run pass through the CLI", async () => {
  const target = hostTarget();
  if (!target || target.refused || Deno.build.os === "windows") return;
  const dir = await Deno.makeTempDir();
  try {
    const wrapper = `${dir}/plumise`;
    const argv = [Deno.execPath(), ...cliArgv([])].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
    await Deno.writeTextFile(wrapper, `#!/bin/sh\nexec ${argv} "$@"\n`, { mode: 0o755 });
    const lines: string[] = [];
    await releaseSmoke({ binary: wrapper, target: target.name, log: (l) => lines.push(l) });
    assert.ok(lines.some((l) => /^ok version: /.test(l)), lines.join("\n"));
    assert.ok(lines.some((l) => /^ok doctor --offline/.test(l)), lines.join("\n"));
    assert.ok(lines.some((l) => /^ok blocks run: 2 blocks within/.test(l)), lines.join("\n"));
    // a wrong target is caught
    const other = target.name === "linux-x64" ? "linux-arm64" : "linux-x64";
    await assert.rejects(
      releaseSmoke({ binary: wrapper, target: other, log: () => {} }),
      /built for linux\//,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
