import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import { readDotenv } from "./cli.ts";

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
