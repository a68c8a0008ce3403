/**
 * The module graph a compiled binary carries, from `deno info --json`: the entry point, every
 * module it imports (statically or by an analyzable dynamic import), and every Worker module that
 * those start with `new Worker(new URL("…", import.meta.url))` (which `deno compile` does not
 * follow by itself and must be given as `--include`), with the npm packages they reach.
 * @module
 */
import { relative, resolve } from "node:path";
import { fileURLToPath as fromFileUrl, pathToFileURL as toFileUrl } from "node:url";

export interface NpmPackageInfo {
  readonly id: string;
  readonly name: string;
  readonly dependencies: readonly string[];
  /** The package's folder, `…/node_modules/.deno/<id>/node_modules/<name>`. */
  readonly localPath?: string;
}

export interface ModuleGraph {
  /** Absolute path of the entry point. */
  readonly entry: string;
  /** Worker modules found in the graph (absolute paths), to pass as `--include`. */
  readonly workers: readonly string[];
  /** Local modules (absolute path → bytes), outside node_modules. */
  readonly localModules: ReadonlyMap<string, number>;
  /** npm package ids the modules import directly. */
  readonly npmRoots: ReadonlySet<string>;
  /** Every npm package deno resolved (id → info). */
  readonly npmPackages: ReadonlyMap<string, NpmPackageInfo>;
}

interface DenoInfo {
  modules: Array<{ kind?: string; specifier: string; local?: string; size?: number; npmPackage?: string }>;
  npmPackages?: Record<string, { name: string; dependencies?: string[]; localPath?: string }>;
}

const WORKER_RE = /new\s+Worker\(\s*new\s+URL\(\s*["'`]([^"'`]+)["'`]\s*,\s*import\.meta\.url\s*\)/g;

async function denoInfo(root: string, module: string): Promise<DenoInfo> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--config", resolve(root, "deno.json"), module],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (!out.success) {
    throw new Error(
      `deno info ${relative(root, module)} failed (run \`deno install\` first):\n${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** The graph of `entry` (default `main.ts` in `root`) plus the Workers it starts. */
export async function moduleGraph(root: string, entry = "main.ts"): Promise<ModuleGraph> {
  const entryPath = resolve(root, entry);
  const nodeModules = resolve(root, "node_modules");
  const localModules = new Map<string, number>();
  const npmRoots = new Set<string>();
  const npmPackages = new Map<string, NpmPackageInfo>();
  const workers: string[] = [];
  const pending = [entryPath];
  const done = new Set<string>();
  while (pending.length) {
    const module = pending.shift()!;
    if (done.has(module)) continue;
    done.add(module);
    const info = await denoInfo(root, module);
    for (const [id, p] of Object.entries(info.npmPackages ?? {})) {
      npmPackages.set(id, { id, name: p.name, dependencies: p.dependencies ?? [], localPath: p.localPath });
    }
    for (const m of info.modules) {
      if (m.kind === "npm" && m.npmPackage) npmRoots.add(m.npmPackage);
      if (!m.specifier.startsWith("file:") || !m.local) continue;
      const path = m.local;
      if (path.startsWith(nodeModules)) continue;
      if (localModules.has(path)) continue;
      localModules.set(path, m.size ?? (await Deno.stat(path)).size);
      if (!/\.(ts|js|mjs|mts|tsx|jsx)$/.test(path)) continue;
      const text = await Deno.readTextFile(path);
      for (const match of text.matchAll(WORKER_RE)) {
        const worker = fromFileUrl(new URL(match[1], toFileUrl(path).href));
        if (!workers.includes(worker)) {
          workers.push(worker);
          pending.push(worker);
        }
      }
    }
  }
  return { entry: entryPath, workers, localModules, npmRoots, npmPackages };
}

/** The npm packages reachable from the graph's imports (ids), following their dependencies. */
export function npmClosure(graph: ModuleGraph): Set<string> {
  const out = new Set<string>();
  const stack = [...graph.npmRoots];
  while (stack.length) {
    const id = stack.pop()!;
    if (out.has(id)) continue;
    out.add(id);
    for (const dep of graph.npmPackages.get(id)?.dependencies ?? []) stack.push(dep);
  }
  return out;
}
