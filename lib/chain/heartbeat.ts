/**
 * Heartbeat through precompile 0x22 (empty calldata, 100 000 gas), every `intervalMs`
 * (default 300 s), the first one right after start.
 * @module
 */
import type { AbortOptions } from "../util/abort.ts";
import { type Logger, silentLogger } from "../util/logger.ts";
import { PeriodicTask } from "./_periodic_task.ts";
import type { TxQueue, TxResult } from "./tx_queue.ts";

export const AGENT_HEARTBEAT_ADDRESS = "0x0000000000000000000000000000000000000022";
export const HEARTBEAT_GAS = 100_000n;
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 300_000;

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
      intervalMs: options.intervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
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
