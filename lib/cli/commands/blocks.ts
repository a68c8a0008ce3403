/**
 * `plumise blocks run`: run transformer blocks locally on given hidden states (optionally
 * incrementally through the KV cache in given step sizes), or run the client head + all blocks on
 * token ids and write the last position's logits — so an operator can check the runtime against
 * any reference.
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { ConfigError } from "../../errors.ts";
import type { DownloadProgress } from "../../runtime/hub_download.ts";
import type { CommandContext } from "../command_context.ts";
import { addConfigOptions } from "../config_options.ts";
import { modelSource } from "../../runtime/model_source.ts";
import { writeTextAtomic } from "../../util/write_text_atomic.ts";
import { dirname, resolve } from "node:path";

function usage(message: string, hint: string): ConfigError {
  return new ConfigError("BAD_INPUT", message, { hint });
}

/** Parses "a:b" into a span. */
export function parseSpan(text: string): { start: number; end: number } {
  const m = /^(\d+):(\d+)$/.exec(text.trim());
  if (!m || Number(m[1]) >= Number(m[2])) {
    throw usage(
      `--blocks ${JSON.stringify(text)} is not a span a:b with a < b`,
      "e.g. --blocks 0:4 for blocks 0, 1, 2, 3",
    );
  }
  return { start: Number(m[1]), end: Number(m[2]) };
}

/** Parses "5,1,1" into step sizes. */
export function parseSteps(text: string): number[] {
  const parts = text.split(",").map((s) => s.trim());
  const steps = parts.map(Number);
  if (!steps.length || steps.some((n, i) => !Number.isInteger(n) || n < 1 || parts[i] === "")) {
    throw usage(
      `--steps ${JSON.stringify(text)} must be positive integers separated by commas`,
      "e.g. --steps 5,1,1,1",
    );
  }
  return steps;
}

/** Validates `{"hidden": [[[...]]]}` and flattens it to [B, T, H]. */
export function parseHiddenJson(
  json: unknown,
  source: string,
): { data: Float32Array; shape: [number, number, number] } {
  const h = (json as { hidden?: unknown })?.hidden;
  const hint =
    'the input file must be JSON {"hidden": [[[...]]]} of shape [batch, tokens, hidden] with finite numbers';
  if (
    !Array.isArray(h) || !h.length || !Array.isArray(h[0]) || !h[0].length || !Array.isArray(h[0][0]) ||
    !h[0][0].length
  ) {
    throw usage(`${source}: "hidden" is not a non-empty [B, T, H] array`, hint);
  }
  const b = h.length, t = h[0].length, hs = h[0][0].length;
  const data = new Float32Array(b * t * hs);
  let k = 0;
  for (let i = 0; i < b; i++) {
    if (!Array.isArray(h[i]) || h[i].length !== t) {
      throw usage(`${source}: hidden[${i}] does not have ${t} tokens`, hint);
    }
    for (let j = 0; j < t; j++) {
      const row = h[i][j];
      if (!Array.isArray(row) || row.length !== hs) {
        throw usage(`${source}: hidden[${i}][${j}] does not have ${hs} values`, hint);
      }
      for (const v of row) {
        if (typeof v !== "number" || !Number.isFinite(v)) {
          throw usage(`${source}: hidden[${i}][${j}] holds ${JSON.stringify(v)}`, hint);
        }
        data[k++] = v;
      }
    }
  }
  return { data, shape: [b, t, hs] };
}

/** `{"input_ids": [[...]]}` / `{"ids": [[...]]}` / a JSON array, or an inline "1,2,3". */
export function parseIds(text: string, source: string): { data: Int32Array; shape: [number, number] } {
  const hint = 'pass --input-ids "1,2,3" or a JSON file {"input_ids": [[1, 2, 3]]}';
  let rows: unknown;
  if (/^\s*\d+(\s*,\s*\d+)*\s*$/.test(text)) rows = [text.split(",").map(Number)];
  else {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw usage(`${source} is neither a comma-separated id list nor JSON`, hint);
    }
    const o = json as { input_ids?: unknown; ids?: unknown };
    rows = Array.isArray(json) ? json : o.input_ids ?? o.ids;
    if (Array.isArray(rows) && rows.length && typeof rows[0] === "number") rows = [rows];
  }
  if (
    !Array.isArray(rows) || !rows.length ||
    !rows.every((r) => Array.isArray(r) && r.length === (rows as unknown[][])[0].length && r.length > 0)
  ) {
    throw usage(`${source}: ids must be a non-empty rectangular [B, T] array`, hint);
  }
  const flat = (rows as unknown[][]).flat();
  if (!flat.every((v) => Number.isInteger(v) && (v as number) >= 0)) {
    throw usage(`${source}: ids must be integers ≥ 0`, hint);
  }
  return { data: Int32Array.from(flat as number[]), shape: [rows.length, (rows as unknown[][])[0].length] };
}

/** A one-line download progress bar on a terminal's stderr (undefined otherwise: the runtime logs lines). */
export function terminalProgress(): ((p: DownloadProgress) => void) | undefined {
  let terminal = false;
  try {
    terminal = Deno.stderr.isTerminal();
  } catch {
    terminal = false;
  }
  if (!terminal) return undefined;
  const enc = new TextEncoder();
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (!p.done && now - last < 100) return;
    last = now;
    const frac = p.total > 0 ? p.received / p.total : 1;
    const bar = "#".repeat(Math.round(frac * 30)).padEnd(30, ".");
    const mb = (n: number) => (n / 2 ** 20).toFixed(1);
    const line = `\r${p.file.slice(-40).padEnd(40)} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${
      mb(p.received)
    }/${mb(p.total)} MB`;
    Deno.stderr.writeSync(enc.encode(line + (p.done ? "\n" : "")));
  };
}

function nest(data: Float32Array, b: number, t: number, h: number): number[][][] {
  const out: number[][][] = [];
  for (let i = 0; i < b; i++) {
    const rows: number[][] = [];
    for (let j = 0; j < t; j++) rows.push(Array.from(data.subarray((i * t + j) * h, (i * t + j + 1) * h)));
    out.push(rows);
  }
  return out;
}

export function registerBlocks(program: Command, ctx: CommandContext): void {
  const blocks = program.command("blocks").description(
    "run transformer blocks locally (check the runtime against a reference)",
  );
  const run = blocks.command("run")
    .description("run blocks on hidden states from a JSON file, or the whole model on token ids")
    .option("--blocks <a:b>", "blocks [a, b) to run (with --input)")
    .option("--input <file>", 'JSON {"hidden": [[[...]]]} of shape [B, T, H]')
    .option(
      "--input-ids <ids|file>",
      'token ids ("1,2,3" or a JSON file {"input_ids": [[...]]}): run head + all blocks, write the last logits',
    )
    .option("--output <file>", "where to write the JSON result (default: standard output)")
    .option("--steps <sizes>", "run incrementally through the KV cache in these step sizes (sum = T)");
  addConfigOptions(run, ["model", "revision", "weights", "hfEndpoint", "hfHome", "threads", "cpuPinning"]);
  run.action(async (opts) => {
    const { config } = ctx.resolve(opts as Record<string, unknown>);
    const logger = ctx.logger(config, { quiet: true });
    if (!opts.input === !opts.inputIds) {
      throw usage("give exactly one of --input and --input-ids", "see plumise blocks run --help");
    }
    // where the result goes is checked before the blocks run (minutes, on a large model)
    if (opts.output) await checkOutputPath(String(opts.output));
    const { createBlockRuntime, createClientHead } = await import("../../runtime/mod.ts");
    const source = {
      ...modelSource(config),
      logger,
      signal: ctx.signal,
      threads: config.threads,
      pinning: config.cpuPinning,
      onProgress: terminalProgress(),
    };
    let result: unknown;
    if (opts.input) {
      if (!opts.blocks) throw usage("--input needs --blocks a:b", "e.g. --blocks 0:4");
      const span = parseSpan(opts.blocks);
      let text: string;
      try {
        text = await Deno.readTextFile(opts.input);
      } catch (cause) {
        throw usage(`cannot read --input ${opts.input}: ${(cause as Error).message}`, "check the path");
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (cause) {
        throw usage(
          `--input ${opts.input} is not JSON: ${(cause as Error).message}`,
          'write {"hidden": [[[...]]]}',
        );
      }
      const hidden = parseHiddenJson(json, opts.input);
      const [b, t, h] = hidden.shape;
      const steps = opts.steps ? parseSteps(opts.steps) : [t];
      const sum = steps.reduce((a, n) => a + n, 0);
      if (sum !== t) {
        throw usage(
          `--steps add up to ${sum} but the input has ${t} tokens`,
          `make the step sizes sum to ${t}`,
        );
      }
      const rt = createBlockRuntime({
        ...source,
        start: span.start,
        end: span.end,
        weights: config.weights,
        cacheTokens: b * t * (span.end - span.start),
        maxLength: t,
      });
      await rt.start();
      try {
        const outputs: number[][][][] = [];
        if (!opts.steps) {
          const y = await rt.forward(span.start, span.end, hidden, { signal: ctx.signal });
          outputs.push(nest(y.data, b, t, h));
        } else {
          const s = await rt.openSession({ start: span.start, end: span.end, maxLength: t, batch: b });
          let pos = 0;
          for (const n of steps) {
            const part = new Float32Array(b * n * h);
            for (let r = 0; r < b; r++) {
              part.set(hidden.data.subarray((r * t + pos) * h, (r * t + pos + n) * h), r * n * h);
            }
            const y = await s.step({ data: part, shape: [b, n, h] }, { signal: ctx.signal });
            outputs.push(nest(y.data, b, n, h));
            pos += n;
          }
          await s.close();
        }
        result = { model: config.model, blocks: [span.start, span.end], weights: config.weights, outputs };
      } finally {
        await rt.stop();
      }
    } else {
      let text = opts.inputIds!;
      let src = "--input-ids";
      if (!/^\s*\d+(\s*,\s*\d+)*\s*$/.test(text)) {
        try {
          text = await Deno.readTextFile(opts.inputIds!);
          src = opts.inputIds!;
        } catch (cause) {
          throw usage(
            `--input-ids ${opts.inputIds} is neither an id list nor a readable file: ${
              (cause as Error).message
            }`,
            "check the path",
          );
        }
      }
      const ids = parseIds(text, src);
      const [b, t] = ids.shape;
      const head = createClientHead(source);
      await head.start();
      try {
        const n = head.info.numBlocks;
        const rt = createBlockRuntime({
          ...source,
          start: 0,
          end: n,
          weights: config.weights,
          cacheTokens: b * t * n,
          maxLength: t,
        });
        await rt.start();
        try {
          const x = await head.embed(ids, { signal: ctx.signal });
          const y = await rt.forward(0, n, x, { signal: ctx.signal });
          const H = head.info.hiddenSize;
          const last = new Float32Array(b * H);
          for (let r = 0; r < b; r++) last.set(y.data.subarray((r * t + t - 1) * H, (r * t + t) * H), r * H);
          const logits = await head.logits({ data: last, shape: [b, H] }, { signal: ctx.signal });
          const V = logits.shape[1];
          const rows: number[][] = [];
          for (let r = 0; r < b; r++) rows.push(Array.from(logits.data.subarray(r * V, (r + 1) * V)));
          result = {
            model: config.model,
            weights: config.weights,
            input_ids: Array.from({ length: b }, (_, r) => Array.from(ids.data.subarray(r * t, (r + 1) * t))),
            logits: rows,
          };
        } finally {
          await rt.stop();
        }
      } finally {
        await head.stop();
      }
    }
    const out = JSON.stringify(result);
    if (opts.output) await writeTextAtomic(opts.output, out + "\n");
    else ctx.stdout(out);
  });
}

/** Throws BAD_INPUT unless `path` can be written: its directory exists, and it is not a directory. */
async function checkOutputPath(path: string): Promise<void> {
  const fail = (why: string) =>
    usage(`--output ${path}: ${why}`, "give a file path in an existing directory");
  const dir = dirname(resolve(path));
  const d = await Deno.stat(dir).catch(() => undefined);
  if (!d?.isDirectory) throw fail(`the directory ${dir} does not exist`);
  const f = await Deno.stat(path).catch(() => undefined);
  if (f?.isDirectory) throw fail("it is a directory");
}
