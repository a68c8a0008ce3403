import assert from "node:assert/strict";
import {
  allowedCpus,
  cpusOfMask,
  maskOfCpus,
  pinnedWhile,
  pinThisThread,
  planPinning,
} from "./_cpu_affinity.ts";
import { RuntimeError } from "../errors.ts";
import { parseCpuList } from "../util/cpu_list.ts";

Deno.test("planPinning: auto pins exactly when the threads use every allowed CPU", () => {
  assert.deepEqual(planPinning(2, "auto", [0, 1]), { plan: { caller: 0, workers: [1] } });
  assert.deepEqual(planPinning(4, "auto", [2, 3, 6, 7]), { plan: { caller: 2, workers: [3, 6, 7] } });
  const more = planPinning(2, "auto", [0, 1, 2, 3]);
  assert.ok("skipped" in more);
  assert.match(more.skipped, /4 CPUs for 2 threads: the kernel places them/);
  const fewer = planPinning(4, "auto", [0, 1]);
  assert.ok("skipped" in fewer);
  assert.match(fewer.skipped, /2 CPUs for 4 threads/);
});

Deno.test("planPinning: off, auto with one thread and unknown affinity pin nothing, and say why", () => {
  assert.deepEqual(planPinning(2, "off", [0, 1]), { skipped: "CPU pinning is off" });
  assert.deepEqual(planPinning(1, "auto", [0]), { skipped: "one intra-op thread: nothing to keep apart" });
  // a list keeps even a one-thread runtime on its CPU (and is checked)
  assert.deepEqual(planPinning(1, [3], [0, 1, 2, 3]), { plan: { caller: 3, workers: [] } });
  assert.throws(() => planPinning(1, [7], [0, 1]), /names CPU 7, but this process may only run on 0,1/);
  assert.deepEqual(planPinning(2, "auto", undefined), {
    skipped: "thread affinity is not supported on this system",
  });
});

Deno.test("planPinning: a list pins its first CPUs in order, and must name allowed CPUs, enough of them", () => {
  assert.deepEqual(planPinning(2, [3, 1, 2], [0, 1, 2, 3]), { plan: { caller: 3, workers: [1] } });
  assert.throws(
    () => planPinning(3, [0, 1], [0, 1, 2, 3]),
    /CPU_PINNING 0,1 names 2 CPUs for 3 intra-op threads; name one per thread/,
  );
  assert.throws(
    () => planPinning(2, [0, 5], [0, 1, 2, 3]),
    /CPU_PINNING names CPU 5, but this process may only run on 0-3/,
  );
  // a CPU outside the first `threads` entries is never used, so it is not checked
  assert.deepEqual(planPinning(2, [0, 1, 9], [0, 1]), { plan: { caller: 0, workers: [1] } });
  assert.throws(() => planPinning(2, [0, 1], undefined), /needs thread affinity.*Linux only/);
});

Deno.test("masks: CPU numbers to kernel bits and back", () => {
  const m = maskOfCpus([0, 3, 9, 63], 8);
  assert.deepEqual([...m], [0b1001, 0b10, 0, 0, 0, 0, 0, 0x80]);
  assert.deepEqual(cpusOfMask(m), [0, 3, 9, 63]);
  assert.throws(() => maskOfCpus([64], 8), /CPU 64 does not fit a 8-byte mask/);
});

/** The CPUs the calling thread may run on, from the kernel's own report (its source also runs in the Worker below). */
const threadCpus = () =>
  parseCpuList(/^Cpus_allowed_list:\s*(.*)$/m.exec(Deno.readTextFileSync("/proc/thread-self/status"))![1]);
const cpuListUrl = JSON.stringify(new URL("../util/cpu_list.ts", import.meta.url).href);

Deno.test({
  name: "allowedCpus and pinThisThread: a Worker pins its own thread, the process keeps its CPUs",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const allowed = allowedCpus();
    assert.ok(Array.isArray(allowed), JSON.stringify(allowed));
    assert.deepEqual(allowed, threadCpus());
    const target = allowed[allowed.length - 1];
    const src = `
      import { pinThisThread } from ${JSON.stringify(new URL("./_cpu_affinity.ts", import.meta.url).href)};
      import { parseCpuList } from ${cpuListUrl};
      const threadCpus = ${threadCpus.toString()};
      self.onmessage = (e) => {
        const before = threadCpus();
        pinThisThread(e.data);
        self.postMessage({ before, after: threadCpus() });
      };`;
    const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
    const worker = new Worker(url, { type: "module" });
    try {
      const got = new Promise<{ before: number[]; after: number[] }>((resolve, reject) => {
        worker.onmessage = (e) => resolve(e.data);
        worker.onerror = (e) => reject(new Error(e.message));
      });
      worker.postMessage(target);
      const { before, after } = await got;
      assert.deepEqual(before, allowed);
      assert.deepEqual(after, [target]);
      assert.deepEqual(threadCpus(), allowed, "the main thread was not pinned");
      assert.deepEqual(allowedCpus(), allowed);
    } finally {
      worker.terminate();
      URL.revokeObjectURL(url);
    }
    // a CPU this process may not use is refused by the kernel, in a clear error
    const outside = Math.max(...allowed) + 1;
    const src2 = `
      import { pinThisThread } from ${JSON.stringify(new URL("./_cpu_affinity.ts", import.meta.url).href)};
      self.onmessage = (e) => { try { pinThisThread(e.data); self.postMessage("pinned"); } catch (err) { self.postMessage(err.message); } };`;
    const url2 = URL.createObjectURL(new Blob([src2], { type: "text/javascript" }));
    const w2 = new Worker(url2, { type: "module" });
    try {
      const said = new Promise<string>((resolve) => (w2.onmessage = (e) => resolve(e.data)));
      w2.postMessage(outside);
      assert.equal(
        await said,
        `sched_setaffinity to CPU ${outside} failed: EINVAL: the mask holds no CPU that is online and allowed to this process (its cpuset cgroup)`,
      );
    } finally {
      w2.terminate();
      URL.revokeObjectURL(url2);
    }
  },
});

Deno.test({
  name: "pinThisThread: refused off Linux",
  ignore: Deno.build.os === "linux",
  fn() {
    assert.throws(() => pinThisThread(0), /thread affinity needs Linux/);
    const allowed = allowedCpus();
    assert.ok(!Array.isArray(allowed) && /not Linux/.test(allowed.unknown));
  },
});

Deno.test({
  name:
    "pinnedWhile: makes under the pool's CPUs, pins back; a failed pin is BAD_PINNING and releases what was made",
  ignore: Deno.build.os !== "linux",
  fn() {
    const allowed = allowedCpus();
    assert.ok(Array.isArray(allowed), JSON.stringify(allowed));
    const cpu = allowed[0];
    let released = 0;
    const thing = { release: () => void released++ };
    try {
      assert.equal(pinnedWhile({ caller: cpu, workers: [cpu] }, () => thing), thing);
      assert.equal(released, 0);
      // a CPU no process has: pinning back fails after `make` ran
      assert.throws(
        () => pinnedWhile({ caller: 4095, workers: [cpu] }, () => thing),
        (e) => e instanceof RuntimeError && e.code === "BAD_PINNING" && /CPU 4095/.test(e.message),
      );
      assert.equal(released, 1, "what was made is released");
      assert.throws(
        () => pinnedWhile({ caller: cpu, workers: [4095] }, () => thing),
        (e) => e instanceof RuntimeError && e.code === "BAD_PINNING",
      );
      assert.equal(released, 1, "nothing made when the first pin fails");
    } finally {
      pinThisThread(allowed);
    }
  },
});
