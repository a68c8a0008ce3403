/**
 * Pinning a runtime's compute threads to distinct CPUs (Linux). An onnxruntime step with N intra-op
 * threads runs on the thread that calls it plus N − 1 pool threads; each parallel op is split among
 * them and waits for the slowest. Nothing makes the kernel keep them on different CPUs: a pool
 * thread woken after the process sat idle may be placed on the CPU of the thread that woke it, and
 * the whole step then runs at one thread's speed. Some virtualised kernels do this on purpose
 * (packing woken threads onto busy vCPUs so idle ones can stay halted — `sched_vcpu_pack` on the
 * 2-vCPU VM of docs/benchmarks.md), and a swarm server is idle two thirds of every token. Pinned,
 * the woken thread never shares the waker's CPU and the step after a sleep runs about as fast as
 * one back to back (docs/benchmarks.md, "CPU pinning"). onnxruntime pins its pool threads itself when asked
 * (`session.intra_op_thread_affinities`) but never the calling thread, so that one is pinned here,
 * with `sched_setaffinity` through FFI.
 *
 * Plans are pure functions; only `allowedCpus` and `pinThisThread` touch the system.
 * @module
 */
import { RuntimeError } from "../errors.ts";
import { type CpuPinning, formatCpuList, MAX_CPU } from "../util/cpu_list.ts";

/** Where each compute thread of a runtime runs: the calling thread and onnxruntime's pool threads. */
export interface PinPlan {
  /** The CPU (0-based, as the kernel numbers them) of the thread that runs the steps. */
  caller: number;
  /** One CPU per pool thread (`threads − 1` of them). */
  workers: number[];
}

/** A plan, or why there is none (said in the runtime's load log). */
export type PinDecision = { plan: PinPlan } | { skipped: string };

/**
 * Which CPUs a runtime with `threads` intra-op threads pins its threads to, given the CPUs this
 * process may run on (`allowed`, undefined where affinity is unknown or unsupported):
 * - `off`, no affinity support, or `auto` with one thread: none (nothing to keep apart);
 * - `auto`: the allowed CPUs in order, only when there are exactly `threads` of them — the runtime
 *   then uses the whole machine anyway, so pinning takes nothing from anyone; with more CPUs than
 *   threads the choice of which ones is left to the kernel (or to an explicit list, so that several
 *   nodes on one machine do not share the same cores);
 * - a list: its first `threads` CPUs, which must all be allowed (otherwise a `RangeError` naming
 *   the CPU and the allowed set: a typo should not silently fall back to unpinned threads); with
 *   one thread the caller alone is pinned, so that a node told to keep to its CPUs does.
 */
export function planPinning(
  threads: number,
  setting: CpuPinning,
  allowed: readonly number[] | undefined,
): PinDecision {
  if (setting === "off") return { skipped: "CPU pinning is off" };
  if (threads < 2 && setting === "auto") return { skipped: "one intra-op thread: nothing to keep apart" };
  if (allowed === undefined) {
    if (setting === "auto") return { skipped: "thread affinity is not supported on this system" };
    throw new RangeError(
      `CPU_PINNING ${
        formatCpuList(setting)
      } needs thread affinity, which this system does not support (Linux only); use auto or off`,
    );
  }
  let cpus: readonly number[];
  if (setting === "auto") {
    if (allowed.length !== threads) {
      return {
        skipped:
          `${allowed.length} CPUs for ${threads} threads: the kernel places them (set CPU_PINNING to a list to pin)`,
      };
    }
    cpus = allowed;
  } else {
    if (setting.length < threads) {
      throw new RangeError(
        `CPU_PINNING ${
          formatCpuList(setting)
        } names ${setting.length} CPUs for ${threads} intra-op threads; name one per thread`,
      );
    }
    cpus = setting.slice(0, threads);
    const missing = cpus.find((c) => !allowed.includes(c));
    if (missing !== undefined) {
      throw new RangeError(
        `CPU_PINNING names CPU ${missing}, but this process may only run on ${formatCpuList(allowed)}`,
      );
    }
  }
  return { plan: { caller: cpus[0], workers: cpus.slice(1, threads) } };
}

/** Bytes of the affinity masks passed to the kernel: one bit per CPU up to MAX_CPU. */
const MASK_BYTES = (MAX_CPU + 1) / 8;

/** CPU numbers set in a kernel affinity mask (little-endian bytes, bit i = CPU i). */
export function cpusOfMask(mask: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < mask.length * 8; i++) if (mask[i >> 3] & (1 << (i & 7))) out.push(i);
  return out;
}

/** The kernel affinity mask (`bytes` long) with exactly `cpus` set. */
export function maskOfCpus(cpus: readonly number[], bytes = MASK_BYTES): Uint8Array {
  const mask = new Uint8Array(bytes);
  for (const c of cpus) {
    if (c < 0 || c >= bytes * 8) throw new RangeError(`CPU ${c} does not fit a ${bytes}-byte mask`);
    mask[c >> 3] |= 1 << (c & 7);
  }
  return mask;
}

type Libc = Deno.DynamicLibrary<{
  sched_getaffinity: { parameters: ["i32", "usize", "buffer"]; result: "i32" };
  sched_setaffinity: { parameters: ["i32", "usize", "buffer"]; result: "i32" };
  __errno_location: { parameters: []; result: "pointer" };
}>;
let libc: Libc | undefined;

function openLibc(): Libc {
  return libc ??= Deno.dlopen("libc.so.6", {
    sched_getaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
    sched_setaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
    __errno_location: { parameters: [], result: "pointer" },
  });
}

/** What `sched_setaffinity`'s errors mean (man sched_setaffinity). */
const SET_ERRNO: Record<number, string> = {
  1: "EPERM: not permitted (another user's thread, or CAP_SYS_NICE missing)",
  3: "ESRCH: no such thread",
  14: "EFAULT: bad mask address",
  22: "EINVAL: the mask holds no CPU that is online and allowed to this process (its cpuset cgroup)",
};
/** What `sched_getaffinity`'s errors mean. */
const GET_ERRNO: Record<number, string> = {
  3: "ESRCH: no such thread",
  14: "EFAULT: bad mask address",
  22: "EINVAL: the mask buffer is smaller than the kernel's CPU mask",
};

/**
 * Runs a libc call and, when it returns non-zero, says why from the calling thread's `errno`
 * (FFI calls run on the calling thread; errno is zeroed first, so a 0 afterwards means that the
 * call did not set it, and is said as unknown).
 */
function checkedCall(lib: Libc, call: () => number, meanings: Record<number, string>): string | undefined {
  const p = lib.symbols.__errno_location();
  const errno = p ? new Int32Array(Deno.UnsafePointerView.getArrayBuffer(p, 4)) : undefined;
  if (errno) errno[0] = 0;
  if (call() === 0) return undefined;
  const n = errno?.[0] ?? 0;
  if (n === 0) return "errno unknown";
  return meanings[n] ?? `errno ${n}`;
}

/**
 * The CPUs this process may run on (`sched_getaffinity` of its main thread, so a Worker already
 * pinned does not narrow it), or a reason why that is unknown (not Linux, no libc, no FFI permission).
 */
export function allowedCpus(): number[] | { unknown: string } {
  if (Deno.build.os !== "linux") return { unknown: `not Linux (${Deno.build.os})` };
  try {
    const mask = new Uint8Array(MASK_BYTES);
    const lib = openLibc();
    const failed = checkedCall(
      lib,
      () => lib.symbols.sched_getaffinity(Deno.pid, BigInt(MASK_BYTES), mask),
      GET_ERRNO,
    );
    if (failed) return { unknown: `sched_getaffinity failed: ${failed}` };
    return cpusOfMask(mask);
  } catch (err) {
    return { unknown: (err as Error).message };
  }
}

/**
 * Pins the calling OS thread (a Deno Worker's own thread when called there) to one CPU (or a set of
 * them). Throws when the kernel refuses (the CPU is not allowed or offline).
 */
export function pinThisThread(cpu: number | readonly number[]): void {
  if (Deno.build.os !== "linux") throw new Error(`thread affinity needs Linux, this is ${Deno.build.os}`);
  const lib = openLibc();
  const mask = maskOfCpus(typeof cpu === "number" ? [cpu] : cpu, MASK_BYTES);
  const failed = checkedCall(
    lib,
    () => lib.symbols.sched_setaffinity(0, BigInt(MASK_BYTES), mask),
    SET_ERRNO,
  );
  if (failed) throw new Error(`sched_setaffinity to CPU ${cpu} failed: ${failed}`);
}

/** The BAD_PINNING error of a pinning setting or plan this process cannot honour. */
function refused(message: string, cause?: unknown): RuntimeError {
  return new RuntimeError("BAD_PINNING", message, {
    hint: "set CPU_PINNING to auto, off, or CPUs this process may use (see `taskset -p $$`)",
    cause,
  });
}

/**
 * Pins the calling thread (the engine's: it runs every step) as `setting` decides for `threads`
 * threads and returns the plan for onnxruntime's pool threads and what was done, in words.
 * Throws BAD_PINNING where the setting cannot be honoured.
 */
export function pinEngineThread(setting: CpuPinning, threads: number): { plan?: PinPlan; said: string } {
  const allowed = allowedCpus();
  const why = Array.isArray(allowed) ? "" : ` (${allowed.unknown})`;
  let decision;
  try {
    decision = planPinning(threads, setting, Array.isArray(allowed) ? allowed : undefined);
  } catch (err) {
    throw refused((err as Error).message + why);
  }
  if ("skipped" in decision) return { said: decision.skipped + why };
  const { plan } = decision;
  try {
    pinThisThread(plan.caller);
  } catch (err) {
    throw refused((err as Error).message);
  }
  const pool = plan.workers.length ? `, pool CPU ${plan.workers.join(",")}` : "";
  return { plan, said: `caller CPU ${plan.caller}${pool}` };
}

/**
 * Makes something (an onnxruntime session with a pool of its own) with this thread pinned to the
 * pool's CPUs, so the pool's threads inherit them, then pins it back to the caller's CPU; what was
 * made but cannot be handed back (the second pin failed) is released. Failures are BAD_PINNING.
 */
export function pinnedWhile<T extends { release(): void }>(plan: PinPlan, make: () => T): T {
  const pin = (cpus: number | readonly number[]) => {
    try {
      pinThisThread(cpus);
    } catch (err) {
      throw refused(`pinning the engine's threads to CPU ${cpus}: ${(err as Error).message}`, err);
    }
  };
  pin(plan.workers);
  let made: T | undefined;
  try {
    made = make();
  } finally {
    try {
      pin(plan.caller);
    } catch (err) {
      made?.release();
      // deno-lint-ignore no-unsafe-finally
      throw err;
    }
  }
  return made;
}
