/**
 * `WorkerClient`: the main-thread end of the runtime Worker (ort_worker.ts). Requests are
 * numbered, answered in the Worker's priority order, and errors come back as RuntimeErrors with
 * their codes. If the Worker dies, every pending and later call fails with ENGINE_FAILED.
 * @module
 */
import type { AbortOptions } from "../util/abort.ts";
import { RuntimeError } from "../errors.ts";
import type { Logger } from "../util/logger.ts";
import { silentLogger } from "../util/logger.ts";
import type { BatchEvent, DirectEvent, WorkerMessage, WorkerRequest } from "./worker_protocol.ts";
import { deserializeError } from "./worker_protocol.ts";

type Args<O extends WorkerRequest["op"]> = Extract<WorkerRequest, { op: O }>["args"];

export class WorkerClient {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  readonly #log: Logger;
  readonly #direct = new Map<string, (e: DirectEvent) => void>();
  #next = 1;
  /** Hears the Worker's reports of the batches of steps it ran (for metrics). */
  onBatch?: (e: BatchEvent) => void;
  #dead?: RuntimeError;

  constructor(logger: Logger = silentLogger) {
    this.#log = logger;
    this.#worker = new Worker(new URL("./ort_worker.ts", import.meta.url).href, { type: "module" });
    this.#worker.onmessage = (e: MessageEvent<WorkerMessage>) => {
      const r = e.data;
      if ("event" in r) return r.event === "batch" ? this.onBatch?.(r) : this.#direct.get(r.id)?.(r);
      const p = this.#pending.get(r.id);
      if (!p) return;
      this.#pending.delete(r.id);
      if (r.ok) p.resolve(r.result);
      else p.reject(deserializeError(r.error));
    };
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#fail(
        new RuntimeError("ENGINE_FAILED", `the runtime worker crashed: ${e.message}`, {
          hint: "restart the node; if it repeats, report it with the log",
        }),
      );
    };
  }

  /** Ends every pending call and direct path with `err`; a crash (not a stop) is logged as an error. */
  #fail(err: RuntimeError, crashed = true): void {
    if (this.#dead) return;
    this.#dead = err;
    if (crashed) this.#log.error("runtime worker failed", { error: err.message });
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    for (const [id, listener] of [...this.#direct]) {
      listener({
        event: "direct",
        id,
        kind: "ended",
        end: { kind: "failed", code: "INTERNAL", message: err.message },
      });
    }
    this.#direct.clear();
  }

  /** Listens to the direct-path events of one session (replacing any earlier listener); returns the remover. */
  onDirect(sessionId: string, listener: (e: DirectEvent) => void): () => void {
    this.#direct.set(sessionId, listener);
    return () => {
      if (this.#direct.get(sessionId) === listener) this.#direct.delete(sessionId);
    };
  }

  /** Whether the worker is usable. */
  get alive(): boolean {
    return !this.#dead;
  }

  /**
   * Sends a request. An abort rejects the returned promise at once; the Worker still finishes
   * the request (its result is dropped).
   */
  call<O extends WorkerRequest["op"]>(
    op: O,
    args: Args<O>,
    { signal, transfer = [] }: AbortOptions & { transfer?: Transferable[] } = {},
  ): Promise<unknown> {
    if (this.#dead) return Promise.reject(this.#dead);
    if (signal?.aborted) return Promise.reject(signal.reason);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#pending.delete(id);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#pending.set(id, {
        resolve: (v) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(v);
        },
        reject: (e) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      });
      this.#worker.postMessage({ id, op, args } as WorkerRequest, transfer);
    });
  }

  /** Asks the Worker to release its sessions (best effort), then terminates it. */
  async dispose(): Promise<void> {
    try {
      await this.call("dispose", {});
    } catch {
      // the Worker is gone already
    }
    this.terminate();
  }

  terminate(): void {
    this.#worker.terminate();
    this.#fail(new RuntimeError("NOT_RUNNING", "the runtime was stopped", { hint: "start it again" }), false);
  }
}
