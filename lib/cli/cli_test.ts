import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import { readDotenv, readDotenvPipe, SAME_SIGNAL_MS, signalMeaning } from "./cli.ts";

Deno.test("--env-file: a file or a pipe is read (up to 1 MiB); a device is refused unread", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/a.env`, "THROUGHPUT=7\n");
    assert.deepEqual(readDotenv(`${dir}/a.env`, dir), { THROUGHPUT: "7" });
    // a pipe, as `--env-file <(sops -d …)` gives
    const fifo = `${dir}/p.env`;
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output().catch(() => undefined);
    if (mk?.success) {
      const writer = new Deno.Command("sh", { args: ["-c", `printf 'A=1\\nB=2\\n' > '${fifo}'`] }).spawn();
      assert.deepEqual(readDotenv(fifo, dir), { A: "1", B: "2" });
      await writer.status;
    }
    assert.throws(
      () => readDotenv("/dev/zero", dir),
      (e: unknown) =>
        e instanceof ConfigError && e.code === "ENV_FILE_UNREADABLE" &&
        /not a regular file or a pipe/.test(e.message),
    );
    await Deno.writeFile(`${dir}/big.env`, new Uint8Array((1 << 20) + 10).fill(65));
    assert.throws(() => readDotenv(`${dir}/big.env`, dir), /1048586 bytes, not an env file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--env-file: a pipe is read without blocking the thread; a signal ends the wait for its writer", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/a.env`, "A=1\n");
    const never = new AbortController().signal;
    assert.equal(
      await readDotenvPipe(`${dir}/a.env`, dir, { signal: never }),
      undefined,
      "files: readDotenv",
    );
    assert.equal(await readDotenvPipe(undefined, dir, { signal: never }), undefined, "no ./.env");
    // a pipe each: a read the abort left behind may still take what a writer sends
    const [fifo, fifo2, fifo3] = [`${dir}/p1.env`, `${dir}/p2.env`, `${dir}/p3.env`];
    const mk = await new Deno.Command("mkfifo", { args: [fifo, fifo2, fifo3] }).output().catch(() =>
      undefined
    );
    if (!mk?.success) return; // no mkfifo: nothing to test
    // nobody writes: the thread stays free (the timer below runs) and the abort ends the wait
    const controller = new AbortController();
    const waited: string[] = [];
    const reading = readDotenvPipe(fifo, dir, {
      signal: controller.signal,
      onWait: (f) => waited.push(f),
      noticeMs: 20,
    });
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(waited, [fifo], "told once that it waits for a writer");
    controller.abort(new ConfigError("INTERRUPTED", "interrupted by a signal"));
    await assert.rejects(reading, (e: unknown) => e instanceof ConfigError && e.code === "INTERRUPTED");
    // a writer that opens but says nothing: the read is ended the same way
    const quiet = new Deno.Command("sh", { args: ["-c", `exec 3>'${fifo2}'; exec sleep 30`] }).spawn();
    const c2 = new AbortController();
    const reading2 = readDotenvPipe(fifo2, dir, { signal: c2.signal });
    await new Promise((r) => setTimeout(r, 200));
    c2.abort(new ConfigError("INTERRUPTED", "interrupted by a signal"));
    await assert.rejects(reading2, (e: unknown) => e instanceof ConfigError && e.code === "INTERRUPTED");
    quiet.kill("SIGKILL");
    await quiet.status;
    // and one that writes is read whole
    const writer = new Deno.Command("sh", { args: ["-c", `printf 'A=1\\nB=2\\n' > '${fifo3}'`] }).spawn();
    assert.deepEqual(await readDotenvPipe(fifo3, dir, { signal: never }), { A: "1", B: "2" });
    await writer.status;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("signals: the first stops gracefully; the same one delivered twice is ignored; a later one exits", () => {
  assert.equal(signalMeaning(undefined, 5_000), "stop");
  // before: any second signal exited at once, so `deno task`'s forwarded copy of a process group's
  // SIGTERM skipped the grace period
  assert.equal(signalMeaning(5_000, 5_020), "same");
  assert.equal(signalMeaning(5_000, 5_000 + SAME_SIGNAL_MS - 1), "same");
  assert.equal(signalMeaning(5_000, 5_000 + SAME_SIGNAL_MS), "exit");
});
