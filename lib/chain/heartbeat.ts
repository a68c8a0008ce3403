/**
 * Heartbeat through precompile 0x22 (empty calldata, 100 000 gas), the first one right after start,
 * then so that two land at most `intervalMs` apart (default 300 s): an agent counts as active only
 * while its last heartbeat is at most 300 s old, and a heartbeat takes a few seconds to be mined,
 * so the next one is sent `heartbeatLeadMs` early (`heartbeatPeriodMs`).
 * @module
 */
import type { AbortOptions } from "../util/abort.ts";
import { type Logger, silentLogger } from "../util/logger.ts";
import { PeriodicTask } from "./_periodic_task.ts";
import type { TxQueue, TxResult } from "./tx_queue.ts";

export const AGENT_HEARTBEAT_ADDRESS = "0x0000000000000000000000000000000000000022";
export const HEARTBEAT_GAS = 100_000n;
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 300_000;

/** How early each heartbeat is sent for `intervalMs`: a tenth of it, at most 30 s (10 blocks). */
export function heartbeatLeadMs(intervalMs: number): number {
  return Math.min(30_000, Math.floor(intervalMs / 10));
}

/**
 * The wait after a heartbeat was mined before the next is sent: `intervalMs` less the lead, so that
 * the next lands within `intervalMs` of this one while mining takes less than the lead.
 */
export function heartbeatPeriodMs(intervalMs: number): number {
  return intervalMs - heartbeatLeadMs(intervalMs);
}

/** Sends one heartbeat tx and waits for its receipt. */
export function sendHeartbeat(queue: TxQueue, { signal }: AbortOptions = {}): Promise<TxResult> {
  return queue.send(
    { to: AGENT_HEARTBEAT_ADDRESS, data: "0x", gasLimit: HEARTBEAT_GAS, label: "heartbeat" },
    { signal },
  );
}

export interface HeartbeatLoopOptions {
  queue: TxQueue;
  intervalMs?: number;
  /** Delay of the first heartbeat (default 0: at once). */
  initialDelayMs?: number;
  logger?: Logger;
  onHeartbeat?: (result: TxResult) => void;
}

export class HeartbeatLoop {
  readonly #task: PeriodicTask;

  constructor(options: HeartbeatLoopOptions) {
    const logger = (options.logger ?? silentLogger).child({ part: "heartbeat" });
    this.#task = new PeriodicTask({
      name: "heartbeat",
      intervalMs: heartbeatPeriodMs(options.intervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS),
      initialDelayMs: options.initialDelayMs ?? 0,
      logger,
      run: async ({ signal }) => {
        const r = await sendHeartbeat(options.queue, { signal });
        logger.debug("heartbeat sent", { tx: r.hash });
        options.onHeartbeat?.(r);
      },
    });
  }

  get failures(): number {
    return this.#task.failures;
  }

  start(): void {
    this.#task.start();
  }

  stop(): Promise<void> {
    return this.#task.stop();
  }
}
