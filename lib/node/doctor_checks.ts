/**
 * The checks of `plumise doctor`, one function each. Every check returns a result and never
 * throws: an operator wants the whole list, not the first failure.
 * @module
 */
import type { AbortOptions } from "../util/abort.ts";
import { statfs } from "node:fs/promises";
import { dirname } from "node:path";
import { formatPlm } from "../chain/preflight.ts";
import { gatherChainStatus } from "../chain/status.ts";
import { BASE_PROCESS_BYTES, describeBytes } from "../config/tiers.ts";
import type { Config } from "../config/types.ts";
import { errorMessage, PlumiseError } from "../errors.ts";
import { probeOracle, SKEW_WARN_SECONDS } from "../reporter/oracle_probe.ts";
import { cachedFile } from "../runtime/hub_download.ts";
import { modelFile } from "../runtime/checkpoint.ts";
import { modelSource } from "../runtime/model_source.ts";
import { ensureOrtLibrary } from "../runtime/native/ort_library.ts";
import { ORT_VERSION } from "../runtime/native/ort_files.ts";
import { OrtApi } from "../runtime/native/ort_api.ts";
import { blockShapeOf, spanFootprint, tierOfModel } from "./span_footprint.ts";

/** One line of the doctor's report. */
export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  hint?: string;
}

const pass = (name: string, detail: string): DoctorCheck => ({ name, ok: true, detail });
const fail = (name: string, detail: string, hint: string): DoctorCheck => ({ name, ok: false, detail, hint });

function failFrom(name: string, err: unknown, hint: string): DoctorCheck {
  return fail(name, errorMessage(err), err instanceof PlumiseError && err.hint ? err.hint : hint);
}

export async function checkEngine(
  cacheHome: string | undefined,
  { signal }: AbortOptions = {},
): Promise<DoctorCheck> {
  try {
    const lib = await ensureOrtLibrary({ cacheDir: cacheHome, signal });
    // the engine's own loader: the library opens and offers the C API version the engine uses
    const { version } = OrtApi.load(lib.path);
    const from = lib.extracted ? `copied now from ${lib.source}` : "verified copy";
    if (version !== ORT_VERSION) {
      return fail(
        "onnxruntime",
        `${lib.path} says it is ${version}, expected ${ORT_VERSION}`,
        "delete the file; the next start copies it again",
      );
    }
    return pass(
      "onnxruntime",
      `onnxruntime ${version} (${lib.platform}, CPU) loads from ${lib.path} (${from})`,
    );
  } catch (err) {
    return failFrom("onnxruntime", err, "see docs/operations.md (Native engine files)");
  }
}

/** The model's config.json, from the local directory, the cache or the hub (a small download). */
export interface CheckpointFacts {
  check: DoctorCheck;
  config?: Record<string, unknown>;
  /** Every weight file of the checkpoint is already on disk. */
  cached: boolean;
}

async function allWeightsCached(config: Config): Promise<boolean> {
  const { hfHome, model, revision } = config;
  const index = await cachedFile(hfHome, model, "model.safetensors.index.json", revision);
  if (!index) return Boolean(await cachedFile(hfHome, model, "model.safetensors", revision));
  const files = new Set(
    Object.values(JSON.parse(await Deno.readTextFile(index)).weight_map ?? {}) as string[],
  );
  for (const f of files) if (!(await cachedFile(hfHome, model, f, revision))) return false;
  return files.size > 0;
}

export async function checkCheckpoint(
  config: Config,
  { signal }: AbortOptions = {},
): Promise<CheckpointFacts> {
  const name = "checkpoint";
  const isDir = await Deno.stat(config.model).then((s) => s.isDirectory, () => false);
  try {
    if (isDir) {
      const raw = JSON.parse(await Deno.readTextFile(`${config.model}/config.json`));
      return { check: pass(name, `local checkpoint ${config.model}`), config: raw, cached: true };
    }
    const cachedConfig = await cachedFile(config.hfHome, config.model, "config.json", config.revision);
    if (cachedConfig && (await allWeightsCached(config))) {
      const raw = JSON.parse(await Deno.readTextFile(cachedConfig));
      return {
        check: pass(
          name,
          `${config.model} (${config.revision}) is cached in ${config.hfHome}/hub: no download needed`,
        ),
        config: raw,
        cached: true,
      };
    }
    const path = (await modelFile(modelSource(config), "config.json", false, { signal }))!;
    const raw = JSON.parse(await Deno.readTextFile(path));
    return {
      check: pass(
        name,
        `${config.hfEndpoint} answers for ${config.model} (${config.revision}); the served blocks' shards download on first start`,
      ),
      config: raw,
      cached: false,
    };
  } catch (err) {
    return {
      check: failFrom(
        name,
        err,
        "check MODEL_NAME, MODEL_REVISION, HF_ENDPOINT and HF_TOKEN, and the network",
      ),
      cached: false,
    };
  }
}

export function checkMemory(
  config: Config,
  raw: Record<string, unknown> | undefined,
  available: number | undefined,
) {
  const name = "memory";
  const shape = raw ? blockShapeOf(raw) : undefined;
  const tier = tierOfModel(config.model);
  const fp = shape ? spanFootprint(shape, config.numBlocks, config.weights) : undefined;
  const blocks = fp
    ? fp.memoryBytes
    : tier && config.weights === "int8"
    ? tier.perBlockBytes * config.numBlocks + BASE_PROCESS_BYTES
    : undefined;
  const head = fp?.headBytes ?? 0;
  const need = blocks === undefined ? undefined : blocks + head;
  if (need === undefined) {
    return fail(
      name,
      `cannot estimate: the config of ${config.model} is not available`,
      "fix the checkpoint check first: this one needs the model's config",
    );
  }
  if (available === undefined) {
    return fail(name, "the available memory cannot be read", "check /proc/meminfo");
  }
  const detail = `${config.numBlocks} ${config.weights} blocks of ${config.model} need about ` +
    `${describeBytes(blocks!)}${
      fp
        ? `, and the client head (loaded on the API's first generation) ${describeBytes(head)} more`
        : " (from the tier table; the client head not counted without the model's config)"
    }; ${describeBytes(available)} available`;
  return need <= available ? pass(name, detail) : fail(
    name,
    detail,
    "serve fewer blocks (NUM_BLOCKS), a smaller tier, or int8 weights (the client head too); or free memory",
  );
}

async function nearestExisting(path: string): Promise<string> {
  let p = path;
  for (;;) {
    if (await Deno.stat(p).then(() => true, () => false)) return p;
    const up = dirname(p);
    if (up === p) return p;
    p = up;
  }
}

const DISK_MARGIN = 2 ** 30;

export async function checkDisk(config: Config, raw: Record<string, unknown> | undefined, cached: boolean) {
  const name = "disk";
  const shape = raw ? blockShapeOf(raw) : undefined;
  try {
    const at = await nearestExisting(config.hfHome);
    const st = await statfs(at);
    const free = Number(st.bavail) * Number(st.bsize);
    if (cached) return pass(name, `checkpoint already on disk; ${describeBytes(free)} free at ${at}`);
    if (!shape) {
      return fail(
        name,
        `cannot estimate: the config of ${config.model} is not available`,
        "fix the checkpoint check first: this one needs the model's config",
      );
    }
    const fp = spanFootprint(shape, config.numBlocks, config.weights);
    // the hub's shards (≤ 5 GB each) can hold more than the served blocks; never more than the checkpoint
    const need = Math.min(fp.checkpointFileBytes, fp.blockFileBytes + 5e9) + DISK_MARGIN;
    const detail =
      `about ${describeBytes(need)} for ${config.model}'s shards (${describeBytes(fp.blockFileBytes)} of ` +
      `served blocks, up to the whole ${describeBytes(fp.checkpointFileBytes)} checkpoint, + 1 GiB); ` +
      `${describeBytes(free)} free at ${at}`;
    return need <= free
      ? pass(name, detail)
      : fail(name, detail, "free disk space or point HF_HOME at a larger disk");
  } catch (err) {
    return failFrom(name, err, "check HF_HOME");
  }
}

export function checkPort(label: string, host: string, port: number): DoctorCheck {
  const name = `${label} port`;
  if (port === -1) return pass(name, "off");
  if (port === 0) return pass(name, `any free port on ${host}`);
  try {
    const l = Deno.listen({ hostname: host, port, transport: "tcp" });
    l.close();
    return pass(name, `${host}:${port} can be bound`);
  } catch (err) {
    const inUse = err instanceof Deno.errors.AddrInUse;
    return fail(
      name,
      `${host}:${port} cannot be bound: ${errorMessage(err)}`,
      inUse
        ? "another process holds the port (is plumise already running?): stop it or choose another port"
        : "choose a port above 1023 or a listen address of this machine",
    );
  }
}

export async function checkIdentity(path: string): Promise<DoctorCheck> {
  const name = "identity";
  try {
    const st = await Deno.stat(path);
    if (!st.isFile) {
      return fail(name, `${path} is not a file`, "move it away; the node creates a new identity");
    }
    if (st.mode === null) return pass(name, `${path} exists (file modes are not checked on this system)`);
    const mode = (st.mode & 0o777).toString(8).padStart(4, "0");
    return st.mode & 0o077
      ? fail(name, `${path} has mode ${mode}: others can read the peer key`, `chmod 600 ${path}`)
      : pass(name, `${path} (mode ${mode})`);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      return pass(name, `${path} does not exist yet: the first start creates it with mode 0600`);
    }
    return failFrom(name, err, "check PETALS_IDENTITY_PATH and the data directory's permissions");
  }
}

/** Chain id, balance and registration of the wallet (three lines). */
export async function checkChain(
  config: Config,
  address: string,
  { signal }: AbortOptions = {},
): Promise<DoctorCheck[]> {
  const s = await gatherChainStatus({
    address,
    rpcUrl: config.rpcUrl,
    chainId: config.chainId,
    rewardPool: config.rewardPool,
    agentRegistry: config.agentRegistry,
    signal,
  });
  const out: DoctorCheck[] = [];
  out.push(
    s.chainIdCheck.ok && s.chainIdCheck.value === config.chainId
      ? pass("chain", `${config.rpcUrl} is chain ${config.chainId}`)
      : fail(
        "chain",
        s.chainIdCheck.ok
          ? `${config.rpcUrl} is chain ${s.chainIdCheck.value}, expected ${config.chainId}`
          : s.chainIdCheck.reason,
        "check PLUMISE_RPC_URL and PLUMISE_CHAIN_ID (41956 mainnet, 419561 testnet)",
      ),
  );
  if (!s.online) return out;
  const balance = s.balanceWei.ok ? BigInt(s.balanceWei.value) : undefined;
  out.push(
    balance === undefined
      ? fail("balance", (s.balanceWei as { reason: string }).reason, "retry; check the RPC endpoint")
      : balance > 0n
      ? pass("balance", `${address} holds ${formatPlm(balance)}`)
      : fail(
        "balance",
        `${address} holds 0 PLM`,
        "send a little PLM to the agent address: registering and heartbeats cost gas",
      ),
  );
  out.push(
    !s.registered.ok
      ? fail("registration", s.registered.reason, "retry; check the RPC endpoint")
      : s.registered.value
      ? pass("registration", `registered${s.active.ok ? (s.active.value ? ", active" : ", not active") : ""}`)
      : balance && balance > 0n
      ? pass("registration", "not registered yet: serve registers the agent on start")
      : fail("registration", "not registered, and no PLM to pay for it", "fund the agent address first"),
  );
  return out;
}

export async function checkOracle(
  config: Config,
  address: string | undefined,
  { signal }: AbortOptions = {},
) {
  try {
    const p = await probeOracle(config.oracleUrl, address, { signal });
    const reach = p.status < 500
      ? pass("oracle", `${config.oracleUrl} answers (HTTP ${p.status}, ${Math.round(p.roundTripMs)} ms)`)
      : fail(
        "oracle",
        `${config.oracleUrl} answers HTTP ${p.status}`,
        "the Oracle has a problem; retry later",
      );
    const clock = p.skewSeconds === undefined
      ? fail(
        "clock",
        "the Oracle sent no Date header: skew unknown",
        "check ORACLE_API_URL points at the Plumise Oracle",
      )
      : Math.abs(p.skewSeconds) <= SKEW_WARN_SECONDS
      ? pass("clock", `${p.skewSeconds} s from the Oracle's clock`)
      : fail(
        "clock",
        `${p.skewSeconds} s from the Oracle's clock (reports more than 60 s off are refused)`,
        "synchronise the clock (timedatectl set-ntp true, or chrony/ntpd)",
      );
    return [reach, clock];
  } catch (err) {
    return [failFrom("oracle", err, "check ORACLE_API_URL and the network")];
  }
}
