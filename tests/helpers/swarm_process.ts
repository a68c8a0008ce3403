/**
 * Spawns `swarm_node_process.ts` as a child process and reads its JSON-line events.
 * @module
 */
import type { SwarmNodeProcessConfig } from "./swarm_node_process.ts";

export interface SwarmEvent {
  event: string;
  [k: string]: unknown;
}

export class SwarmProcess {
  readonly child: Deno.ChildProcess;
  readonly events: SwarmEvent[] = [];
  readonly #waiters = new Set<() => void>();
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly done: Promise<Deno.CommandStatus>;
  /** Resolves once stdout ended and every line was parsed into `events`. */
  readonly drained: Promise<void>;
  peerId = "";
  addrs: string[] = [];

  /**
   * `options.script`: another node script speaking the same JSON lines (default
   * swarm_node_process.ts); `options.prefix`: a command the process runs under (e.g.
   * `ip netns exec <namespace>`).
   */
  constructor(
    config: SwarmNodeProcessConfig | Record<string, unknown>,
    extraFlags: string[] = [],
    options: { script?: string; prefix?: string[] } = {},
  ) {
    const script = options.script ?? new URL("./swarm_node_process.ts", import.meta.url).pathname;
    const argv = [Deno.execPath(), "run", "--allow-all", ...extraFlags, script, JSON.stringify(config)];
    const cmd = [...(options.prefix ?? []), ...argv];
    this.child = new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#stdin = this.child.stdin.getWriter();
    this.done = this.child.status;
    this.drained = this.#read();
  }

  async #read(): Promise<void> {
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of this.child.stdout) {
      buf += decoder.decode(chunk, { stream: true });
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const ev = JSON.parse(line) as SwarmEvent;
          ev.at = performance.now();
          if (ev.event === "ready") {
            this.peerId = ev.peerId as string;
            this.addrs = ev.addrs as string[];
          }
          this.events.push(ev);
        } catch { /* not ours */ }
        for (const w of this.#waiters) w();
      }
    }
    for (const w of this.#waiters) w();
  }

  /** Waits for an event matching `pred` (searching past events first), with a deadline. */
  waitFor(pred: (e: SwarmEvent) => boolean, ms: number, what = "event"): Promise<SwarmEvent> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const e = this.events.find(pred);
        if (e) {
          cleanup();
          resolve(e);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      const cleanup = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** The latest table event. */
  lastTable(): Record<string, string> {
    for (let i = this.events.length - 1; i >= 0; i--) {
      if (this.events[i].event === "table") return this.events[i].servers as Record<string, string>;
    }
    return {};
  }

  async send(line: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(line + "\n"));
  }

  kill(signal: Deno.Signal = "SIGKILL"): void {
    try {
      this.child.kill(signal);
    } catch { /* already gone */ }
  }

  /** Kills (if still running) and waits; closes pipes. */
  async close(): Promise<void> {
    this.kill("SIGKILL");
    await this.done;
    await this.#stdin.close().catch(() => {});
  }
}
