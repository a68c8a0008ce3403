/**
 * One process per data dir (issue 21 item 12): `plumise serve` processes run through main.ts with
 * the binary's permissions. While one holds the data dir, others on it exit 2 naming the holder's
 * pid and `--data-dir`; the lock dies with its process (SIGKILL leaves only a stale pid file, which
 * does not block); a serve with its own `--data-dir` runs beside it. The model hub is a black hole,
 * so each holder stays in its start (after the lock) until killed.
 */
import assert from "node:assert/strict";
import { cleanEnv, cliArgv } from "./helpers/cli.ts";
import { waitFor } from "./helpers/wait_for.ts";

/** A TCP listener that accepts connections and never answers. */
function blackHole(): { url: string; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    try {
      for await (const c of listener) conns.push(c);
    } catch {
      // closed
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
    },
  };
}

class Serve {
  readonly child: Deno.ChildProcess;
  readonly text: string[] = [];
  exitedWith: number | undefined;
  readonly exited: Promise<number>;

  constructor(env: Record<string, string>, args: string[] = []) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: cliArgv(["serve", "--offline", ...args]),
      clearEnv: true,
      env: cleanEnv(env),
      cwd: env.PLUMISE_DATA_DIR.replace(/\/[^/]+$/, ""),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const read = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s.pipeThrough(new TextDecoderStream())) this.text.push(chunk);
    };
    const reading = Promise.all([read(this.child.stdout), read(this.child.stderr)]);
    this.exited = this.child.status.then(async (s) => {
      await reading;
      this.exitedWith = s.code;
      return s.code;
    });
  }

  get output(): string {
    return this.text.join("");
  }

  /** The first JSON log record with `msg`. */
  record(msg: string): Promise<Record<string, unknown>> {
    return waitFor(() => {
      if (this.exitedWith !== undefined) throw new Error(`exited ${this.exitedWith}:\n${this.output}`);
      return this.output.split("\n").map((l) => {
        try {
          return JSON.parse(l);
        } catch {
          return undefined;
        }
      }).find((r) => r?.msg === msg);
    }, { timeoutMs: 60_000, what: `"${msg}"` });
  }

  /** Waits until the process is past the lock (its swarm started), returns its lock record. */
  async locked(): Promise<Record<string, unknown> | undefined> {
    await this.record("swarm started");
    return await this.record("data dir locked").catch(() => undefined);
  }

  /** The exit code, killing the process if it has not exited within 60 s. */
  async code(): Promise<number> {
    const timer = setTimeout(() => this.kill(), 60_000);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // gone
    }
  }
}

Deno.test("cli: one serve process per data dir; others exit 2 naming the holder's pid and --data-dir", async () => {
  const root = await Deno.makeTempDir({ prefix: "plumise-lock-cli-" });
  const hub = blackHole();
  const env = (dir: string): Record<string, string> => ({
    PLUMISE_DATA_DIR: `${root}/${dir}`,
    HF_ENDPOINT: hub.url,
    HF_HOME: `${root}/hf`,
    MODEL_NAME: "test-org/tiny-bloom",
    API_HOST: "127.0.0.1",
    API_PORT: "0",
    PETALS_HOST: "127.0.0.1",
    PETALS_PORT: "0",
    DIRECT_PORT: "0",
    LOG_JSON: "true",
  });
  const all: Serve[] = [];
  const serve = (dir: string, args: string[] = []) => {
    const s = new Serve(env(dir), args);
    all.push(s);
    return s;
  };
  try {
    const a = serve("data");
    const aLock = await a.locked();

    const [b, c] = [serve("data"), serve("data")];
    for (const other of [b, c]) {
      assert.equal(await other.code(), 2, other.output);
      assert.match(other.output, /DATA_DIR_LOCKED/);
      assert.ok(other.output.includes(`pid ${a.child.pid}`), other.output);
      assert.ok(other.output.includes(`${root}/data`), other.output);
      assert.match(other.output, /--data-dir/);
    }
    assert.equal(a.exitedWith, undefined, "the holder is still running");
    assert.equal(aLock?.pid, a.child.pid);

    // The lock dies with its process: after SIGKILL (a stale pid file stays) the dir is free again.
    a.kill();
    await a.exited;
    const d = serve("data");
    assert.equal((await d.locked())?.pid, d.child.pid);
    // A process with its own data dir runs beside it.
    const e = serve("other", ["--data-dir", `${root}/elsewhere`]);
    assert.equal((await e.locked())?.pid, e.child.pid);
  } finally {
    for (const s of all) s.kill();
    await Promise.all(all.map((s) => s.exited));
    hub.close();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});
