/**
 * One `plumise serve` process run through main.ts with the binary's permission flags (as the e2e
 * tests and `deno task bench soak` run them): its JSON log lines, API URL, pid, and signals.
 * @module
 */
import { cleanEnv, cliArgv, MAIN } from "./cli.ts";

export interface LogLine {
  level: string;
  msg: string;
  [k: string]: unknown;
}

/** One `plumise serve` process: its JSON log lines, API URL, and signals. */
export class NodeProcess {
  readonly name: string;
  readonly lines: LogLine[] = [];
  readonly raw: string[] = [];
  readonly exited: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  #waiters: Array<() => void> = [];

  /**
   * `denoFlags`: extra flags for `deno run` (e.g. `--inspect=127.0.0.1:PORT`), right before main.ts
   * (after the binary's flags, so a `--v8-flags` here overrides theirs).
   */
  constructor(name: string, env: Record<string, string>, args: string[] = [], denoFlags: string[] = []) {
    this.name = name;
    const argv = cliArgv(["serve", ...args]);
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [...argv.slice(0, argv.indexOf(MAIN)), ...denoFlags, ...argv.slice(argv.indexOf(MAIN))],
      clearEnv: true,
      env: cleanEnv(env),
      cwd: env.PLUMISE_DATA_DIR,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    void this.#read(this.#child.stderr);
    void this.#read(this.#child.stdout);
    this.exited = this.#child.status;
  }

  async #read(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoderStream();
    let buf = "";
    for await (const chunk of stream.pipeThrough(decoder)) {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.raw.push(line);
        try {
          this.lines.push(JSON.parse(line));
        } catch {
          // not a log record (e.g. a CLI error message)
        }
        const w = this.#waiters;
        this.#waiters = [];
        for (const f of w) f();
      }
    }
  }

  /** Waits for a log record with `msg` (and `pred`), failing early if the process exits. */
  async waitLog(
    msg: string,
    pred: (l: LogLine) => boolean = () => true,
    timeoutMs = 120_000,
  ): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    let done = false;
    void this.exited.then(() => (done = true));
    for (;;) {
      const hit = this.lines.find((l) => l.msg === msg && pred(l));
      if (hit) return hit;
      if (done) {
        throw new Error(`${this.name} exited before logging "${msg}":\n${this.raw.slice(-30).join("\n")}`);
      }
      if (Date.now() > deadline) throw new Error(`${this.name}: no "${msg}" within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  async online(): Promise<{ api: string; addrs: string[]; span: string }> {
    const online = await this.waitLog("node online");
    const swarm = this.lines.find((l) => l.msg === "swarm started");
    return {
      api: String(online.api),
      addrs: (swarm?.addrs as string[] | undefined) ?? [],
      span: String(online.span),
    };
  }

  /** The process id (of the Deno process running main.ts). */
  get pid(): number {
    return this.#child.pid;
  }

  kill(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // already gone
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGKILL");
    await this.exited;
  }
}
