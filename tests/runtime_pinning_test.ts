/**
 * The runtime pins its compute threads (CPU_PINNING, lib/runtime/_cpu_affinity.ts) in its own
 * Worker: checked from the kernel's view of this process's threads, with a tiny generated checkpoint.
 */
import assert from "node:assert/strict";
import { RuntimeError } from "../lib/errors.ts";
import { allowedCpus, planPinning } from "../lib/runtime/_cpu_affinity.ts";
import { createBlockRuntime } from "../lib/runtime/mod.ts";
import type { HiddenStates } from "../lib/runtime/types.ts";
import type { CpuPinning } from "../lib/util/cpu_list.ts";
import { memoryLogger } from "../lib/util/logger.ts";
import { makeBloomCheckpoint } from "./helpers/checkpoint_fixture.ts";

/** Each thread of this process: its name and the CPUs the kernel lets it run on. */
function threadAffinities(): { tid: number; name: string; cpus: string }[] {
  const out = [];
  for (const t of Deno.readDirSync("/proc/self/task")) {
    try {
      const status = Deno.readTextFileSync(`/proc/self/task/${t.name}/status`);
      const name = status.match(/^Name:\s*(.*)$/m)![1];
      const cpus = status.match(/^Cpus_allowed_list:\s*(.*)$/m)![1];
      out.push({ tid: Number(t.name), name, cpus });
    } catch {
      // the thread ended while we looked
    }
  }
  return out;
}

const allowed = allowedCpus();
const linux2 = Deno.build.os === "linux" && Array.isArray(allowed) && allowed.length >= 2;

async function withRuntime(
  dir: string,
  pinning: CpuPinning | undefined,
  threads: number,
  f: (
    step: (x: HiddenStates) => Promise<HiddenStates>,
    said: unknown,
    pinned: readonly number[] | undefined,
  ) => Promise<void>,
): Promise<void> {
  const { logger, records } = memoryLogger();
  const rt = createBlockRuntime({
    model: dir,
    start: 0,
    end: 2,
    weights: "fp32",
    threads,
    pinning,
    logger,
  });
  await rt.start();
  try {
    const said = records.find((r) => r.msg === "blocks ready")?.pinning;
    const s = await rt.openSession({ start: 0, end: 2, maxLength: 8, batch: 1 });
    await f((x) => s.step(x), said, rt.info().pinnedCpus);
    await s.close();
  } finally {
    await rt.stop();
  }
}

Deno.test({
  name:
    "runtime pinning: the Worker and onnxruntime's pool threads run where CPU_PINNING says, outputs unchanged",
  ignore: !linux2,
  async fn() {
    const ck = await makeBloomCheckpoint({ numLayers: 2 });
    try {
      const cpus = allowed as number[];
      const [a, b] = [cpus[cpus.length - 1], cpus[0]]; // not the kernel's order, to see the list is followed
      const x: HiddenStates = {
        data: Float32Array.from({ length: 3 * 48 }, (_, i) => Math.sin(i) / 2),
        shape: [1, 3, 48],
      };
      const mainBefore = threadAffinities().find((t) => t.tid === Deno.pid)!.cpus;
      let pinnedOut: HiddenStates | undefined;
      await withRuntime(ck.dir, [a, b], 2, async (step, said, pinned) => {
        assert.equal(said, `caller CPU ${a}, pool CPU ${b}`);
        assert.deepEqual(pinned, [a, b], "info() says where the threads run, the caller's CPU first");
        pinnedOut = await step(x);
        const threads = threadAffinities();
        assert.ok(
          threads.some((t) => t.cpus === String(a)),
          `a thread pinned to ${a}: ${JSON.stringify(threads)}`,
        );
        assert.ok(
          threads.some((t) => t.cpus === String(b)),
          `a thread pinned to ${b}: ${JSON.stringify(threads)}`,
        );
        assert.equal(
          threads.find((t) => t.tid === Deno.pid)!.cpus,
          mainBefore,
          "the main thread is never pinned",
        );
      });
      let plainOut: HiddenStates | undefined;
      await withRuntime(ck.dir, "off", 2, async (step, said, pinned) => {
        assert.equal(said, "CPU pinning is off");
        assert.equal(pinned, undefined);
        plainOut = await step(x);
      });
      assert.deepEqual(pinnedOut!.shape, plainOut!.shape);
      assert.deepEqual([...pinnedOut!.data], [...plainOut!.data], "pinning changes where, never what");
      // the default is auto: whatever planPinning decides for this machine, said in the log
      await withRuntime(ck.dir, undefined, 2, async (step, said, pinned) => {
        const d = planPinning(2, "auto", cpus);
        assert.deepEqual(
          pinned,
          "plan" in d ? [d.plan.caller, ...d.plan.workers] : undefined,
          "what auto decided",
        );
        assert.deepEqual([...(await step(x)).data], [...plainOut!.data]);
        assert.equal(
          said,
          "plan" in d ? `caller CPU ${d.plan.caller}, pool CPU ${d.plan.workers.join(",")}` : d.skipped,
        );
      });
      // one thread and a list: the caller alone keeps to the list's first CPU
      await withRuntime(ck.dir, [a], 1, async (step, said, pinned) => {
        assert.equal(said, `caller CPU ${a}`);
        assert.deepEqual(pinned, [a]);
        assert.deepEqual([...(await step(x)).data], [...plainOut!.data]);
        assert.ok(threadAffinities().some((t) => t.cpus === String(a)), "a thread pinned to the list's CPU");
      });
    } finally {
      await Deno.remove(ck.dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "runtime pinning: CPUs this process may not use are refused at start with BAD_PINNING",
  ignore: !linux2,
  async fn() {
    const ck = await makeBloomCheckpoint({ numLayers: 2 });
    try {
      const outside = Math.max(...(allowed as number[])) + 1;
      const rt = createBlockRuntime({
        model: ck.dir,
        start: 0,
        end: 2,
        weights: "fp32",
        threads: 2,
        pinning: [0, outside],
      });
      await assert.rejects(rt.start(), (e: unknown) => {
        assert.ok(e instanceof RuntimeError, String(e));
        assert.equal(e.code, "BAD_PINNING");
        assert.match(e.message, new RegExp(`names CPU ${outside}, but this process may only run on`));
        assert.match(e.hint ?? "", /CPU_PINNING to auto, off/);
        return true;
      });
      await rt.stop();
    } finally {
      await Deno.remove(ck.dir, { recursive: true });
    }
  },
});
