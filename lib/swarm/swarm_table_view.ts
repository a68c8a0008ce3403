/**
 * What `plumise swarm` shows: per model, the servers (peer id, span, state, throughput, cache
 * left, weights, version, wallet, age, reachability) and the per-block coverage with the blocks
 * nobody serves (runs of equally covered blocks on one line for models of more than 32 blocks).
 * `swarmTableView` builds a JSON-ready object from table entries (pure); `formatSwarmTableView`
 * renders it as lines (ANSI colour only when asked).
 * @module
 */
import type { TableEntry } from "./swarm_table.ts";

export interface ServerRow {
  peerId: string;
  start: number;
  end: number;
  state: "joining" | "online" | "offline";
  throughput: number;
  cacheTokensLeft: number;
  weights: string;
  version: string;
  wallet: string | null;
  /** Seconds since the server started serving (or since this node first saw it). */
  ageSeconds: number;
  addrs: string[];
  /** Whether the internet reaches the server (null: its record does not say). */
  reachability: "public" | "private" | "unknown" | null;
  /** Relays it is reached through (behind NAT). */
  relays: number;
  /** Whether it relays for peers behind NAT. */
  relaying: boolean;
}

export interface BlockCoverage {
  block: number;
  /** Online servers serving the block. */
  servers: number;
  /** Joining servers announcing the block. */
  joining: number;
  /** Sum of the online servers' throughputs (tokens/s). */
  throughput: number;
}

export interface ModelView {
  model: string;
  /** Total blocks: announced by the servers, else the highest span end seen. */
  totalBlocks: number;
  /** Whether a server announced `totalBlocks` (else trailing blocks nobody serves cannot be known). */
  totalBlocksAnnounced: boolean;
  servers: ServerRow[];
  coverage: BlockCoverage[];
  /** Blocks no online server serves. */
  uncovered: number[];
  /** Every block is served by an online server. */
  complete: boolean;
}

export interface SwarmTableView {
  takenAt: string;
  models: ModelView[];
}

const STATE_ORDER = { online: 0, joining: 1, offline: 2 } as const;

/** Builds the view of `models` (default: every model in the entries). Pure. */
export function swarmTableView(
  entries: readonly TableEntry[],
  options: { now: number; models?: readonly string[] },
): SwarmTableView {
  const models = options.models ?? [...new Set(entries.map((e) => e.record.model))].sort();
  return {
    takenAt: new Date(options.now).toISOString(),
    models: models.map((model) =>
      modelView(entries.filter((e) => e.record.model === model), model, options.now)
    ),
  };
}

function modelView(entries: readonly TableEntry[], model: string, now: number): ModelView {
  const announced = entries.map((e) => e.record.totalBlocks).filter((n): n is number => n !== undefined);
  const maxEnd = Math.max(0, ...entries.map((e) => e.record.end));
  const totalBlocks = Math.max(maxEnd, ...announced);
  const coverage: BlockCoverage[] = Array.from(
    { length: totalBlocks },
    (_, block) => ({ block, servers: 0, joining: 0, throughput: 0 }),
  );
  for (const { record: r } of entries) {
    for (let b = r.start; b < r.end; b++) {
      if (r.state === "online") {
        coverage[b].servers++;
        coverage[b].throughput += r.throughput;
      } else if (r.state === "joining") coverage[b].joining++;
    }
  }
  const servers = entries.map(({ record: r, firstSeen }): ServerRow => ({
    peerId: r.peerId,
    start: r.start,
    end: r.end,
    state: r.state,
    throughput: r.throughput,
    cacheTokensLeft: r.cacheTokensLeft,
    weights: r.weights,
    version: r.version,
    wallet: r.wallet,
    ageSeconds: Math.max(0, Math.round((now - (r.startedAt ?? firstSeen)) / 1000)),
    addrs: [...r.addrs],
    reachability: r.reachability ?? null,
    relays: new Set(r.addrs.filter((a) => a.includes("/p2p-circuit")).map((a) => a.split("/p2p-circuit")[0]))
      .size,
    relaying: r.relay === true,
  })).sort((a, b) =>
    a.start - b.start || STATE_ORDER[a.state] - STATE_ORDER[b.state] || (a.peerId < b.peerId ? -1 : 1)
  );
  const uncovered = coverage.filter((c) => c.servers === 0).map((c) => c.block);
  return {
    model,
    totalBlocks,
    totalBlocksAnnounced: announced.length > 0,
    servers,
    coverage,
    uncovered,
    complete: totalBlocks > 0 && uncovered.length === 0,
  };
}

/** Formats the view for a terminal (`color`) or plain text. */
export function formatSwarmTableView(view: SwarmTableView, options: { color?: boolean } = {}): string[] {
  const red = (s: string) => options.color ? `\x1b[1;31m${s}\x1b[0m` : s;
  const dim = (s: string) => options.color ? `\x1b[2m${s}\x1b[0m` : s;
  const lines: string[] = [];
  if (view.models.length === 0) return ["no servers in the swarm table"];
  for (const m of view.models) {
    if (lines.length) lines.push("");
    const online = m.servers.filter((s) => s.state === "online").length;
    lines.push(
      `model ${m.model}: ${m.servers.length} server(s), ${online} online; ` +
        (m.totalBlocks === 0
          ? "no blocks announced"
          : m.complete
          ? `all ${m.totalBlocks} blocks served`
          : red(`${m.uncovered.length} of ${m.totalBlocks} blocks NOT SERVED: ${ranges(m.uncovered)}`)) +
        (m.totalBlocksAnnounced ? "" : " (model size not announced: blocks past the last span are unknown)"),
    );
    lines.push("");
    const header = [
      "PEER ID",
      "SPAN",
      "STATE",
      "TOK/S",
      "CACHE LEFT",
      "WEIGHTS",
      "VERSION",
      "WALLET",
      "AGE",
      "REACHABLE",
    ];
    const rows = m.servers.map((s) => [
      s.peerId,
      `${s.start}:${s.end}`,
      s.state,
      s.throughput.toFixed(1),
      String(s.cacheTokensLeft),
      s.weights,
      s.version,
      s.wallet ?? "-",
      age(s.ageSeconds),
      reach(s),
    ]);
    lines.push(...table([header, ...rows]).map((l, i) => i === 0 ? dim(l) : l));
    if (m.totalBlocks === 0) continue;
    // Large models (Qwen3-32B has 64 blocks) show runs of equally covered blocks on one line.
    const runs = coverageRuns(m.coverage, m.totalBlocks > GROUP_ABOVE_BLOCKS);
    const grouped = runs.length < m.coverage.length;
    const per = grouped ? "per block, equal neighbours in one line" : "per block";
    lines.push("", `coverage (online servers ${per}; bar = tokens/s):`);
    const maxTp = Math.max(...m.coverage.map((c) => c.throughput), 1e-9);
    const width = 30;
    const idxW = String(m.totalBlocks - 1).length;
    for (const { first, last, c } of runs) {
      const n = c.servers === 0 ? 0 : Math.max(1, Math.round((c.throughput / maxTp) * width));
      const bar = "█".repeat(n) + "·".repeat(width - n);
      const joining = c.joining ? ` (+${c.joining} joining)` : "";
      const label = grouped
        ? `blocks ${(first === last ? `${first}` : `${first}-${last}`).padEnd(2 * idxW + 1)}`
        : `block ${String(first).padStart(idxW)}`;
      const text = `  ${label} ${bar} ${c.servers} server(s) ${c.throughput.toFixed(1)} tok/s${joining}`;
      lines.push(c.servers === 0 ? red(`${text}  <- NOT SERVED`) : text);
    }
  }
  return lines;
}

/** Models with more blocks than this print runs of equally covered blocks as one coverage line. */
export const GROUP_ABOVE_BLOCKS = 32;

/** Consecutive blocks with the same servers, joining servers and throughput (each its own run unless `group`). */
function coverageRuns(
  coverage: readonly BlockCoverage[],
  group: boolean,
): Array<{ first: number; last: number; c: BlockCoverage }> {
  const runs: Array<{ first: number; last: number; c: BlockCoverage }> = [];
  for (const c of coverage) {
    const prev = runs.at(-1);
    if (
      group && prev && prev.c.servers === c.servers && prev.c.joining === c.joining &&
      prev.c.throughput === c.throughput
    ) {
      prev.last = c.block;
    } else runs.push({ first: c.block, last: c.block, c });
  }
  return runs;
}

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd());
}

/** "public, relays" / "private via 2 relays" / "unknown" / "-" (not announced). */
function reach(s: ServerRow): string {
  const base = s.reachability ?? "-";
  if (s.relays > 0) return `${base} via ${s.relays} relay${s.relays === 1 ? "" : "s"}`;
  return s.relaying ? `${base}, relays` : base;
}

function age(s: number): string {
  if (s < 120) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** `[0,1,2,5,7,8]` → `"0-2, 5, 7-8"`. */
export function ranges(blocks: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < blocks.length;) {
    let j = i;
    while (j + 1 < blocks.length && blocks[j + 1] === blocks[j] + 1) j++;
    out.push(i === j ? `${blocks[i]}` : `${blocks[i]}-${blocks[j]}`);
    i = j + 1;
  }
  return out.join(", ");
}
