/**
 * Decentralised block selection and rebalancing (docs/protocol.md, "Block selection", after
 * Petals' block_selection.py). Pure functions over spans; no I/O, no clock.
 * @module
 */

/** One server's span as block selection sees it. */
export interface SelectionSpan {
  readonly peerId: string;
  readonly start: number;
  readonly end: number;
  readonly throughput: number;
}

const EPS = 1e-3;

/** Per-block sum of throughputs (servers in peer-id order so float sums are deterministic). */
export function computeCoverage(spans: readonly SelectionSpan[], totalBlocks: number): number[] {
  const cov = new Array<number>(totalBlocks).fill(0);
  const sorted = [...spans].sort((a, b) => a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0);
  for (const s of sorted) {
    for (let b = Math.max(0, s.start); b < Math.min(s.end, totalBlocks); b++) cov[b] += s.throughput;
  }
  return cov;
}

/**
 * The start of the window of `numBlocks` consecutive blocks whose ascending-sorted coverage
 * is lexicographically smallest (ties: lowest start).
 */
export function chooseBestStart(coverage: readonly number[], numBlocks: number): number {
  const total = coverage.length;
  if (!Number.isSafeInteger(numBlocks) || numBlocks < 1 || numBlocks > total) {
    throw new RangeError(`numBlocks must be in [1, ${total}], got ${numBlocks}`);
  }
  let best = 0;
  let bestKey: number[] | undefined;
  for (let i = 0; i + numBlocks <= total; i++) {
    const key = coverage.slice(i, i + numBlocks).sort((a, b) => a - b);
    if (bestKey === undefined || lexLess(key, bestKey)) {
      best = i;
      bestKey = key;
    }
  }
  return best;
}

function lexLess(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i] < b[i];
  }
  return false;
}

/** The span a new server should take given the current spans. */
export function chooseBestBlocks(
  spans: readonly SelectionSpan[],
  totalBlocks: number,
  numBlocks: number,
): { start: number; end: number } {
  const n = Math.min(numBlocks, totalBlocks);
  const start = chooseBestStart(computeCoverage(spans, totalBlocks), n);
  return { start, end: start + n };
}

export interface RebalanceDecision {
  move: boolean;
  /** Where to move (when `move`). */
  start?: number;
  end?: number;
  /** min coverage now and after simulating the move + everyone's greedy re-placement. */
  initialMin: number;
  simulatedMin?: number;
  reason: string;
}

/**
 * Should server `self` move? Simulates its best move and then every server's greedy
 * re-placement (shuffled by `random`, until nothing moves) and answers yes only when the
 * swarm's minimum coverage would grow by more than 1/balanceQuality, and never when the move
 * would leave a block uncovered.
 */
export function shouldChooseOtherBlocks(
  spans: readonly SelectionSpan[],
  self: string,
  totalBlocks: number,
  options: { balanceQuality?: number; random?: () => number; maxRounds?: number } = {},
): RebalanceDecision {
  const quality = options.balanceQuality ?? 0.75;
  const random = options.random ?? Math.random;
  const mine = spans.find((s) => s.peerId === self);
  if (!mine) return { move: false, initialMin: 0, reason: "own span is not in the table" };
  const spansMut = spans.map((s) => ({ ...s }));
  const cov = computeCoverage(spansMut, totalBlocks);
  const initialMin = Math.min(...cov);
  const len = mine.end - mine.start;
  for (let b = mine.start; b < mine.end; b++) cov[b] -= mine.throughput * (1 + EPS);
  if (initialMin > EPS && Math.min(...cov) <= EPS) {
    return { move: false, initialMin, reason: "leaving would uncover a block" };
  }
  const newStart = chooseBestStart(cov, len);
  if (newStart === mine.start) return { move: false, initialMin, reason: "already at the best place" };
  // simulate the move
  for (let b = mine.start; b < mine.end; b++) cov[b] += mine.throughput * EPS; // undo the ε bias
  for (let b = newStart; b < newStart + len; b++) cov[b] += mine.throughput;
  const me = spansMut.find((s) => s.peerId === self)!;
  me.start = newStart;
  me.end = newStart + len;
  // everyone re-places greedily until a fixpoint
  const maxRounds = options.maxRounds ?? 100;
  for (let round = 0; round < maxRounds; round++) {
    let moved = false;
    const order = [...spansMut];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (const s of order) {
      const l = s.end - s.start;
      if (l >= totalBlocks) continue;
      for (let b = s.start; b < s.end; b++) cov[b] -= s.throughput;
      const best = chooseBestStart(cov, l);
      if (best !== s.start) {
        moved = true;
        s.start = best;
        s.end = best + l;
      }
      for (let b = s.start; b < s.end; b++) cov[b] += s.throughput;
    }
    if (!moved) break;
  }
  const simulatedMin = Math.min(...cov);
  if (simulatedMin < initialMin || simulatedMin < EPS) {
    return { move: false, initialMin, simulatedMin, reason: "the swarm would not improve" };
  }
  if (initialMin / simulatedMin < quality - EPS) {
    return {
      move: true,
      start: newStart,
      end: newStart + len,
      initialMin,
      simulatedMin,
      reason: `min coverage ${initialMin} → ${simulatedMin}`,
    };
  }
  return { move: false, initialMin, simulatedMin, reason: "improvement below the balance quality" };
}

/** Parses `a:b` (the `--block-indices` form) into a span, checking it against `totalBlocks`. */
export function parseBlockIndices(text: string, totalBlocks?: number): { start: number; end: number } {
  const m = /^(\d+):(\d+)$/.exec(text.trim());
  const start = m ? Number(m[1]) : NaN;
  const end = m ? Number(m[2]) : NaN;
  if (!m || end <= start || (totalBlocks !== undefined && end > totalBlocks)) {
    throw new RangeError(
      `block indices must be a:b with 0 ≤ a < b${totalBlocks !== undefined ? ` ≤ ${totalBlocks}` : ""}, got ${
        JSON.stringify(text)
      }`,
    );
  }
  return { start, end };
}
