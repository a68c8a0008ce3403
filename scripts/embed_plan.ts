/**
 * What `deno compile` embeds into one target's binary, and the `--include`/`--exclude` arguments
 * that make it so. Computed by the rules deno 2.9 follows (cli/standalone/binary.rs and
 * cli/lib/standalone/virtual_fs.rs of denoland/deno), not by guessing:
 *
 * - With `nodeModulesDir: "auto"` the binary embeds the whole `node_modules` directory, walked
 *   recursively with symlinks followed; `--exclude-unused-npm` prunes only a global-cache
 *   snapshot, not a `node_modules` directory, so it changes nothing here.
 * - `--exclude PATH` compares exact paths (no globs) against that walk: a directory, a file or a
 *   symlink is skipped when its path (the real path, for followed symlinks) equals one. Paths are
 *   given relative to the working directory, which is the repository's real path.
 * - `--include PATH` adds a file after that walk, even inside an excluded directory, and a module
 *   root (a Worker) with its imports.
 * - Local modules of the graph are embedded as sources (TypeScript ones also with their
 *   transpiled JS and a source map, which this plan does not count).
 *
 * The plan keeps the npm packages the graph reaches (per `deno info`), the target's onnxruntime
 * library and nothing else of onnxruntime-node's `bin/`: no other platform, no DirectML files,
 * and no `.node` addon once no module imports `onnxruntime-node` (the FFI engine).
 * @module
 */
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { ORT_PACKAGE_BIN } from "../lib/runtime/native/ort_files.ts";
import type { CompileTarget } from "./compile_targets.ts";
import { type ModuleGraph, npmClosure } from "./module_graph.ts";

export interface EmbeddedFile {
  /** Path relative to the repository root, with `/`. */
  readonly path: string;
  readonly bytes: number;
}

export interface EmbedPlan {
  readonly target: string;
  /** Every file the binary embeds, sorted by path. */
  readonly files: readonly EmbeddedFile[];
  readonly totalBytes: number;
  /** Local modules (sources) and npm files, separately. */
  readonly moduleBytes: number;
  readonly npmBytes: number;
  /** The onnxruntime library (relative path, bytes). */
  readonly nativeLibrary: EmbeddedFile;
  /** Whether onnxruntime-node's `.node` addon is embedded (only while a module still imports the package). */
  readonly addon: boolean;
  /** `--include` values (relative), in order. */
  readonly includes: readonly string[];
  /** `--exclude` values (relative), sorted. */
  readonly excludes: readonly string[];
  /** Things a reader of the plan should know. */
  readonly notes: readonly string[];
}

const posix = (p: string) => p.split(sep).join("/");

/** `.deno/<folder>` of a package path `…/node_modules/.deno/<folder>/node_modules/<name>`. */
function denoFolderOf(localPath: string): string | undefined {
  const parts = localPath.split(/[\\/]/);
  const i = parts.lastIndexOf(".deno");
  return i >= 0 && i + 1 < parts.length ? parts[i + 1] : undefined;
}

async function tryRealPath(p: string): Promise<string | undefined> {
  try {
    return await Deno.realPath(p);
  } catch {
    return undefined;
  }
}

async function sortedEntries(dir: string): Promise<Deno.DirEntry[]> {
  const out: Deno.DirEntry[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e);
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Walks `start` the way deno's VfsBuilder does (`add_dir_recursive`): excluded paths are skipped,
 * symlinks are followed to their real paths (which are checked against the excludes too).
 */
async function walkLikeVfs(start: string, excluded: ReadonlySet<string>, files: Map<string, number>) {
  const visited = new Set<string>();
  const addDir = async (dir: string): Promise<void> => {
    if (excluded.has(dir) || visited.has(dir)) return;
    visited.add(dir);
    for (const e of await sortedEntries(dir)) await addPath(join(dir, e.name), e);
  };
  const addFile = async (path: string) => {
    if (excluded.has(path) || files.has(path)) return;
    files.set(path, (await Deno.stat(path)).size);
  };
  const addPath = async (path: string, e: Deno.DirEntry) => {
    if (excluded.has(path)) return;
    if (e.isSymlink) {
      const target = await tryRealPath(path);
      if (!target) return; // deno warns "Failed resolving symlink. Ignoring."
      const st = await Deno.stat(target);
      if (st.isDirectory) await addDir(target);
      else if (st.isFile) await addFile(target);
    } else if (e.isDirectory) await addDir(path);
    else if (e.isFile) await addFile(path);
  };
  const real = await tryRealPath(start);
  if (real && !excluded.has(start)) await addDir(real);
}

/** Every symlink under `dir` (not following them), with its real target. */
async function symlinksUnder(dir: string): Promise<Array<{ path: string; target?: string }>> {
  const out: Array<{ path: string; target?: string }> = [];
  const walk = async (d: string, depth: number) => {
    for (const e of await sortedEntries(d)) {
      const p = join(d, e.name);
      if (e.isSymlink) out.push({ path: p, target: await tryRealPath(p) });
      else if (e.isDirectory && depth < 4) await walk(p, depth + 1);
    }
  };
  await walk(dir, 0);
  return out;
}

const within = (path: string, dir: string) => path === dir || path.startsWith(dir + sep);

/**
 * The plan for `target` in the repository at `root` (its real path), given the binary's module
 * graph. Throws for a refused target.
 */
export async function embedPlan(target: CompileTarget, root: string, graph: ModuleGraph): Promise<EmbedPlan> {
  if (target.refused || !target.ort) throw new Error(`${target.name}: ${target.refused}`);
  root = await Deno.realPath(root);
  const nodeModules = join(root, "node_modules");
  const denoDir = join(nodeModules, ".deno");
  const keepIds = npmClosure(graph);
  const keepFolders = new Set<string>();
  for (const id of keepIds) {
    const folder = denoFolderOf(graph.npmPackages.get(id)?.localPath ?? "");
    if (folder) keepFolders.add(folder);
  }
  const ortPkg = await Deno.realPath(join(root, "node_modules", "onnxruntime-node"));
  const ortFolder = denoFolderOf(ortPkg)!;
  const addon = [...keepIds].some((id) => graph.npmPackages.get(id)?.name === "onnxruntime-node");
  const notes: string[] = [];

  const excluded = new Set<string>();
  for (const e of await sortedEntries(denoDir)) {
    // `.deno/node_modules` holds deno's hoisted links; only its links into excluded folders go (below)
    if (!e.isDirectory || e.name === "node_modules" || e.name === ortFolder || keepFolders.has(e.name)) {
      continue;
    }
    excluded.add(join(denoDir, e.name));
  }
  // onnxruntime-node: only the target's library (and its addon while the package is imported).
  const binRoot = join(ortPkg, ...ORT_PACKAGE_BIN.split("/").slice(2));
  const targetDir = join(binRoot, ...target.ort.packageDir.split("/"));
  const library = join(targetDir, target.ort.file);
  if (!addon) {
    for (const e of await sortedEntries(ortPkg)) {
      if (e.name !== "bin") excluded.add(join(ortPkg, e.name));
    }
  }
  for (const osEntry of await sortedEntries(binRoot)) {
    const osDir = join(binRoot, osEntry.name);
    if (!within(targetDir, osDir)) {
      excluded.add(osDir);
      continue;
    }
    for (const archEntry of await sortedEntries(osDir)) {
      const dir = join(osDir, archEntry.name);
      if (dir !== targetDir) {
        excluded.add(dir);
        continue;
      }
      for (const f of await sortedEntries(dir)) {
        const p = join(dir, f.name);
        if (p === library) continue;
        if (addon && f.name.endsWith(".node")) continue;
        excluded.add(p);
      }
    }
  }
  // symlinks into excluded folders (top-level package links, .bin entries, sibling links)
  for (const link of await symlinksUnder(nodeModules)) {
    if (!link.target || [...excluded].some((x) => within(link.target!, x))) excluded.add(link.path);
  }
  if (addon) {
    notes.push(
      "a module still imports onnxruntime-node, so its .node addon is embedded; the addon cannot load its " +
        "library inside a binary (denoland/deno#36626) — the FFI engine that dlopens the extracted library makes it unnecessary",
    );
  } else {notes.push(
      "no module imports onnxruntime-node: no .node addon is embedded, only the library for FFI",
    );}
  notes.push(
    "TypeScript modules are also stored transpiled with a source map (not counted); the base runtime is added",
  );

  const files = new Map<string, number>();
  await walkLikeVfs(nodeModules, excluded, files);
  const npmBytes = [...files.values()].reduce((a, b) => a + b, 0);
  const includes = [...graph.workers, library];
  for (const inc of includes) if (!files.has(inc)) files.set(inc, (await Deno.stat(inc)).size);
  for (const [p, size] of graph.localModules) files.set(p, size);
  const moduleBytes = [...graph.localModules.values()].reduce((a, b) => a + b, 0);

  const rel = (p: string) => posix(relative(root, p));
  const list = [...files].map(([p, bytes]) => ({ path: rel(p), bytes })).sort((a, b) =>
    a.path < b.path ? -1 : a.path > b.path ? 1 : 0
  );
  const libRel = rel(await Deno.realPath(library));
  return {
    target: target.name,
    files: list,
    totalBytes: list.reduce((a, f) => a + f.bytes, 0),
    moduleBytes,
    npmBytes,
    nativeLibrary: { path: libRel, bytes: files.get(library)! },
    addon,
    includes: includes.map((p) => relative(root, p)),
    excludes: [...excluded].map((p) => relative(root, p)).sort(),
    notes,
  };
}

/** The repository root of this script (its real path). */
export function repoRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), "..");
}
