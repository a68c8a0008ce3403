/**
 * Runs `main.ts` as a subprocess with exactly the binary's permission set and V8 flags (the same
 * flags `deno compile` embeds), so CLI contract tests prove that permission set.
 * @module
 */
import { BINARY_PERMISSIONS } from "../../lib/cli/permissions.ts";
import { BINARY_V8_FLAGS } from "../../lib/cli/v8_flags.ts";

export const REPO_ROOT = new URL("../../", import.meta.url).pathname;
export const MAIN = `${REPO_ROOT}main.ts`;

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** The argv that runs the CLI with the binary's permissions. */
export function cliArgv(args: string[]): string[] {
  return [
    "run",
    "--quiet",
    "--config",
    `${REPO_ROOT}deno.json`,
    ...BINARY_V8_FLAGS,
    ...BINARY_PERMISSIONS,
    MAIN,
    ...args,
  ];
}

/** A clean environment: only what Deno needs plus `env`; no PLUMISE_* leaks in from the developer's shell. */
export function cleanEnv(env: Record<string, string> = {}): Record<string, string> {
  const keep = ["PATH", "HOME", "DENO_DIR", "NPM_CONFIG_REGISTRY", "TMPDIR"];
  const base: Record<string, string> = { NO_COLOR: "1" };
  for (const k of keep) {
    const v = Deno.env.get(k);
    if (v !== undefined) base[k] = v;
  }
  return { ...base, ...env };
}

/** Runs the CLI to completion. `cwd` defaults to a fresh temporary directory (so no stray .env is read). */
export async function runPlumise(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; stdin?: string } = {},
): Promise<CliRun> {
  const cwd = options.cwd ?? await Deno.makeTempDir({ prefix: "plumise-cli-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: cliArgv(args),
    cwd,
    clearEnv: true,
    env: cleanEnv(options.env),
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.stdin));
    await w.close();
  }
  const out = await child.output();
  if (!options.cwd) await Deno.remove(cwd, { recursive: true }).catch(() => {});
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/**
 * A child's output stream read as text: `until(text)` reads on until `text` has come (or the stream
 * ended) and returns everything read so far; `rest()` reads to the end.
 */
export function textReader(stream: ReadableStream<Uint8Array>): {
  until(text: string): Promise<string>;
  rest(): Promise<string>;
} {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let said = "";
  return {
    async until(text) {
      for (let r; !said.includes(text) && !(r = await reader.read()).done;) said += r.value;
      return said;
    },
    async rest() {
      for (let r; !(r = await reader.read()).done;) said += r.value;
      return said;
    },
  };
}
