import assert from "node:assert/strict";
import { registerSecret } from "../errors.ts";
import { Logger, memoryLogger } from "./logger.ts";

Deno.test("logger: levels filter, child loggers carry context, fields are kept", () => {
  const { logger, records } = memoryLogger("info");
  logger.debug("hidden");
  const child = logger.child({ part: "chain" });
  child.info("registered", { tx: "0xabc" });
  child.warn("slow", { ms: 12 });
  assert.equal(records.length, 2);
  assert.deepEqual({ ...records[0], time: "" }, {
    time: "",
    level: "info",
    msg: "registered",
    part: "chain",
    tx: "0xabc",
  });
  assert.equal(records[1].level, "warn");
});

Deno.test("logger: JSON lines and pretty lines, secrets redacted in both", () => {
  registerSecret("0x" + "9f".repeat(32));
  const lines: string[] = [];
  for (const json of [true, false]) {
    const l = new Logger({ level: "debug", json, sink: (_r, line) => lines.push(line) });
    l.error("bad key 0x" + "9f".repeat(32), {
      key: "9f".repeat(32),
      n: 5n,
      err: new Error("x 0x" + "9f".repeat(32)),
    });
  }
  const parsed = JSON.parse(lines[0]);
  assert.equal(parsed.level, "error");
  assert.equal(parsed.n, "5");
  assert.match(lines[1], /^\d\d:\d\d:\d\d ERROR bad key \[redacted\] key=\[redacted\] n=5/);
  for (const line of lines) assert.ok(!line.includes("9f9f"), line);
});
