/** The release workflow, the container files: they parse, and they do what docs/operations.md says. */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { TARGETS } from "../scripts/compile_targets.ts";
import { REPO_ROOT } from "./helpers/cli.ts";

const read = (p: string) => Deno.readTextFile(`${REPO_ROOT}${p}`);

// deno-lint-ignore no-explicit-any
type Any = any;

Deno.test("release workflow: on a v* tag, build and smoke-test every buildable target on its own runner, then publish", async () => {
  const wf = parse(await read(".github/workflows/release.yml")) as Any;
  assert.deepEqual(wf.on, { push: { tags: ["v*"] } });
  const build = wf.jobs.build;
  const include = build.strategy.matrix.include as Array<{ target: string; runner: string; asset: string }>;
  assert.deepEqual(
    include.map((m) => [m.target, m.asset]),
    TARGETS.filter((t) => !t.refused).map((t) => [t.name, t.asset]),
  );
  const runners: Record<string, RegExp> = {
    "linux-x64": /^ubuntu-/,
    "linux-arm64": /^ubuntu-.*-arm$/,
    "macos-arm64": /^macos-1[4-9]/,
    "windows-x64": /^windows-/,
  };
  for (const m of include) assert.match(m.runner, runners[m.target], m.target);
  const runs = (build.steps as Array<{ run?: string; uses?: string; with?: Any }>).map((s) =>
    s.run ?? s.uses ?? ""
  );
  const setup = build.steps.find((s: Any) => String(s.uses).startsWith("denoland/setup-deno"));
  assert.equal(setup.with["deno-version"], "2.9.6");
  assert.ok(runs.some((r) => r === "deno install --frozen"));
  assert.ok(
    runs.some((r) =>
      /deno task compile --target \$\{\{ matrix\.target \}\} --dry-run --json > embed-plan\.json/.test(r)
    ),
  );
  assert.ok(runs.some((r) => /^deno task compile --target \$\{\{ matrix\.target \}\}$/.test(r)));
  assert.ok(
    runs.some((r) =>
      /scripts\/release_smoke\.ts --binary dist\/\$\{\{ matrix\.asset \}\} .*--plan embed-plan\.json/.test(r)
    ),
  );
  assert.ok(
    runs.some((r) => /plumise service install/.test(r) && /\/health/.test(r)),
    "the unit is run under systemd",
  );
  const publish = wf.jobs.publish;
  assert.equal(publish.needs, "build");
  assert.equal(publish.permissions.contents, "write");
  const pub = publish.steps.map((s: Any) => s.run ?? s.uses ?? "").join("\n");
  assert.match(pub, /sha256sum plumise-\* install\.sh > SHA256SUMS/);
  assert.match(pub, /gh release create "\$GITHUB_REF_NAME" assets\/\*/);
  assert.match(pub, /PLUMISE_REPO=/, "install.sh is published pointing at this repository");
  assert.equal(wf.permissions.contents, "read");
});

Deno.test("container: slim Debian, the linux binary, a non-root user, volumes, health check on /health at 31331", async () => {
  const df = await read("Dockerfile");
  assert.match(df, /^FROM debian:bookworm-slim$/m);
  assert.match(df, /^USER plumise$/m);
  assert.match(df, /^VOLUME \["\/var\/lib\/plumise", "\/var\/cache\/plumise"\]$/m);
  assert.match(
    df,
    /^HEALTHCHECK .*\n\s+CMD curl -fsS "http:\/\/127\.0\.0\.1:\$\{API_PORT:-31331\}\/health"/m,
  );
  assert.match(df, /plumise-linux-\$a/);
  assert.match(df, /^ENTRYPOINT \["\/usr\/local\/bin\/plumise"\]$/m);
  assert.match(df, /^CMD \["serve"\]$/m);
  const compose = parse(await read("compose.yaml")) as Any;
  const svc = compose.services.plumise;
  assert.equal(svc.network_mode, "host");
  assert.equal(svc.env_file, ".env");
  assert.deepEqual(svc.volumes, ["plumise-data:/var/lib/plumise", "plumise-cache:/var/cache/plumise"]);
  assert.ok(Object.keys(compose.volumes).length === 2);
  const ignore = await read(".dockerignore");
  assert.match(ignore, /^\*$/m);
  assert.match(ignore, /^!dist\/plumise-linux-x64$/m);
});
