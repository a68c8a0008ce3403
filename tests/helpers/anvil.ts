/**
 * Test helper: a real local chain. Starts anvil (from npm `@foundry-rs/anvil`) on a free
 * 127.0.0.1 port, installs the Plumise stand-ins with `anvil_setCode` (precompiles 0x20, 0x21,
 * 0x22, the RewardPool at 0x…1000 and an AgentRegistry at 0x…2000) and puts a JSON-RPC proxy in
 * front of it that answers the `agent_*` methods like the Plumise geth fork.
 *
 * ```ts
 * await using chain = await startTestChain();
 * // chain.rpcUrl (the proxy), chain.anvilUrl, chain.chainId, chain.fundedKeys
 * ```
 * @module
 */
import { AbiCoder, getAddress, Interface, keccak256, Wallet } from "ethers";
import { type RpcProxy, startRpcProxy } from "./rpc_proxy.ts";

export const PRECOMPILE_VERIFY = "0x0000000000000000000000000000000000000020";
export const PRECOMPILE_REGISTER = "0x0000000000000000000000000000000000000021";
export const PRECOMPILE_HEARTBEAT = "0x0000000000000000000000000000000000000022";
export const REWARD_POOL = "0x0000000000000000000000000000000000001000";
/** Where the test AgentRegistry contract lives (set `AGENT_REGISTRY_ADDRESS` to this to use it). */
export const AGENT_REGISTRY = "0x0000000000000000000000000000000000002000";

interface Artifact {
  abi: unknown[];
  deployedBytecode: string;
}
const artifacts = JSON.parse(
  Deno.readTextFileSync(new URL("../../contracts/test/artifacts.json", import.meta.url)),
).artifacts as Record<string, Artifact>;

export const registerIface = new Interface(artifacts.AgentRegisterStandin.abi as string[]);
export const heartbeatIface = new Interface(artifacts.AgentHeartbeatStandin.abi as string[]);
export const poolIface = new Interface(artifacts.RewardPoolStandin.abi as string[]);
export const verifyIface = new Interface(artifacts.VerifyInferenceStandin.abi as string[]);

/** Finds the anvil binary: `$ANVIL_BIN`, then the npm package's platform binary in node_modules. */
export function findAnvil(): string {
  const fromEnv = Deno.env.get("ANVIL_BIN");
  if (fromEnv) return fromEnv;
  const os = Deno.build.os === "windows" ? "win32" : Deno.build.os;
  const arch = Deno.build.arch === "x86_64" ? "amd64" : "arm64";
  const pkg = `anvil-${os}-${arch}`;
  const exe = os === "win32" ? "anvil.exe" : "anvil";
  const root = new URL("../../node_modules/", import.meta.url);
  const candidates = [new URL(`@foundry-rs/${pkg}/bin/${exe}`, root)];
  try {
    for (const e of Deno.readDirSync(new URL(".deno/", root))) {
      if (e.name.startsWith(`@foundry-rs+${pkg}@`)) {
        candidates.push(new URL(`.deno/${e.name}/node_modules/@foundry-rs/${pkg}/bin/${exe}`, root));
      }
    }
  } catch {
    // no node_modules/.deno
  }
  for (const c of candidates) {
    try {
      if (Deno.statSync(c).isFile) return c.pathname;
    } catch {
      // try the next one
    }
  }
  throw new Error(
    `anvil binary not found (looked for ${candidates.map((c) => c.pathname).join(", ")}); ` +
      "run `deno install` or set ANVIL_BIN",
  );
}

/** One JSON-RPC call over HTTP; throws on an error reply. */
export async function rpcCall(url: string, method: string, params: unknown[] = []): Promise<unknown> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    signal: AbortSignal.timeout(15_000),
  });
  const body = await res.json();
  if (body.error) throw new Error(`${method}: ${body.error.message ?? JSON.stringify(body.error)}`);
  return body.result;
}

export interface TxRecord {
  hash: string;
  from: string;
  to: string | null;
  nonce: number;
  blockNumber: number;
  timestamp: number;
  status: number;
}

export interface TestChainOptions {
  /** Chain id of the anvil chain (default 41956, Plumise mainnet). */
  chainId?: number;
  /** Seconds per block; default instant mining. */
  blockTime?: number;
  /** Whether the proxy answers `agent_*` methods (default true; false = a plain EVM). */
  agentMethods?: boolean;
}

export interface TestChain extends AsyncDisposable {
  /** The proxy URL: what the node should use as PLUMISE_RPC_URL. */
  readonly rpcUrl: string;
  /** Anvil itself (no `agent_*` methods). */
  readonly anvilUrl: string;
  readonly chainId: number;
  /** Private keys of anvil's funded accounts (10 000 ETH each). */
  readonly fundedKeys: string[];
  readonly proxy: RpcProxy;
  /** A fresh random key funded with `wei` (default 100 PLM). */
  newFundedKey(wei?: bigint): Promise<string>;
  /** JSON-RPC call straight to anvil. */
  rpc(method: string, params?: unknown[]): Promise<unknown>;
  balance(address: string): Promise<bigint>;
  /** Sets the RewardPool's pending reward of `address` (and funds the pool). */
  setPending(address: string, wei: bigint): Promise<void>;
  pending(address: string): Promise<bigint>;
  isRegistered(address: string): Promise<boolean>;
  /** Every address registered through the 0x21 stand-in, in order. */
  registeredAgents(): Promise<string[]>;
  /** Registration record of the 0x21 stand-in. */
  agentInfo(
    address: string,
  ): Promise<{ name: string; modelHash: string; capabilities: string[]; registeredAt: number }>;
  /** Block timestamps (unix s) of the successful heartbeats of `address`. */
  heartbeats(address: string): Promise<number[]>;
  /** Every mined transaction sent to `to` (optionally only from `from`), oldest first. */
  txsTo(to: string, from?: string): Promise<TxRecord[]>;
  /** Registers `key` on the 0x21 stand-in directly (for tests of other parts). */
  registerAgent(key: string, name?: string): Promise<void>;
  /** Sets anvil's next block timestamp offset and mines (time travel). */
  increaseTime(seconds: number): Promise<void>;
  stop(): Promise<void>;
}

async function readUntilListening(
  stdout: ReadableStream<Uint8Array>,
  deadlineMs: number,
): Promise<{ port: number; keys: string[]; rest: ReadableStreamDefaultReader<Uint8Array>; log: string[] }> {
  const reader = stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + deadlineMs;
  const timer = setTimeout(() => reader.cancel("anvil did not start in time").catch(() => {}), deadlineMs);
  try {
    while (Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      const m = text.match(/Listening on 127\.0\.0\.1:(\d+)/);
      if (m) {
        const keys = [...text.matchAll(/^\((\d+)\) (0x[0-9a-fA-F]{64})\s*$/gm)].map((k) => k[2]);
        return { port: Number(m[1]), keys, rest: reader, log: text.split("\n").slice(-20) };
      }
    }
  } finally {
    clearTimeout(timer);
  }
  throw new Error(`anvil did not print its listening address; output:\n${text.slice(-2000)}`);
}

/** Starts anvil + the stand-ins + the agent_* proxy. Dispose it (or call stop()) to kill anvil. */
export async function startTestChain(options: TestChainOptions = {}): Promise<TestChain> {
  const chainId = options.chainId ?? 41956;
  const args = ["--host", "127.0.0.1", "--port", "0", "--chain-id", String(chainId), "--accounts", "10"];
  if (options.blockTime) args.push("--block-time", String(options.blockTime));
  const child = new Deno.Command(findAnvil(), { args, stdin: "null", stdout: "piped", stderr: "null" })
    .spawn();
  let started: Awaited<ReturnType<typeof readUntilListening>>;
  try {
    started = await readUntilListening(child.stdout, 20_000);
  } catch (err) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
    throw err;
  }
  // Keep draining anvil's stdout so that it never blocks on a full pipe.
  const drain = (async () => {
    try {
      while (!(await started.rest.read()).done) { /* discard */ }
    } catch {
      // stream cancelled at stop
    }
  })();
  const anvilUrl = `http://127.0.0.1:${started.port}`;
  const rpc = (method: string, params: unknown[] = []) => rpcCall(anvilUrl, method, params);

  let stopped = false;
  let proxy: RpcProxy | undefined;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await proxy?.stop();
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    await child.status;
    await drain;
  };

  try {
    await rpc("anvil_setCode", [PRECOMPILE_VERIFY, artifacts.VerifyInferenceStandin.deployedBytecode]);
    await rpc("anvil_setCode", [PRECOMPILE_REGISTER, artifacts.AgentRegisterStandin.deployedBytecode]);
    await rpc("anvil_setCode", [PRECOMPILE_HEARTBEAT, artifacts.AgentHeartbeatStandin.deployedBytecode]);
    await rpc("anvil_setCode", [REWARD_POOL, artifacts.RewardPoolStandin.deployedBytecode]);
    await rpc("anvil_setCode", [AGENT_REGISTRY, artifacts.AgentRegistryStandin.deployedBytecode]);
    await rpc("anvil_setBalance", [REWARD_POOL, "0x" + (10n ** 24n).toString(16)]);
    proxy = await startRpcProxy({ upstream: anvilUrl, agentMethods: options.agentMethods ?? true });
  } catch (err) {
    await stop();
    throw err;
  }

  const call = async (iface: Interface, to: string, fn: string, args: unknown[]) => {
    const data = iface.encodeFunctionData(fn, args);
    const out = await rpc("eth_call", [{ to, data }, "latest"]) as string;
    return iface.decodeFunctionResult(fn, out);
  };

  const chain: TestChain = {
    rpcUrl: proxy.url,
    anvilUrl,
    chainId,
    fundedKeys: started.keys,
    proxy,
    async newFundedKey(wei = 100n * 10n ** 18n) {
      const w = Wallet.createRandom();
      await rpc("anvil_setBalance", [w.address, "0x" + wei.toString(16)]);
      return w.privateKey;
    },
    rpc,
    async balance(address) {
      return BigInt(await rpc("eth_getBalance", [address, "latest"]) as string);
    },
    async setPending(address, wei) {
      // `pending` is the first state variable of RewardPoolStandin: slot keccak(addr ‖ 0).
      const slot = keccak256(AbiCoder.defaultAbiCoder().encode(["address", "uint256"], [address, 0]));
      await rpc("anvil_setStorageAt", [REWARD_POOL, slot, "0x" + wei.toString(16).padStart(64, "0")]);
      const poolBalance = await chain.balance(REWARD_POOL);
      if (poolBalance < wei) await rpc("anvil_setBalance", [REWARD_POOL, "0x" + (wei * 2n).toString(16)]);
    },
    async pending(address) {
      return (await call(poolIface, REWARD_POOL, "getPendingReward", [address]))[0] as bigint;
    },
    async isRegistered(address) {
      return (await call(registerIface, PRECOMPILE_REGISTER, "isAgent", [address]))[0] as boolean;
    },
    async registeredAgents() {
      const n = Number((await call(registerIface, PRECOMPILE_REGISTER, "agentCount", []))[0]);
      const out: string[] = [];
      for (let i = 0; i < n; i++) {
        out.push((await call(registerIface, PRECOMPILE_REGISTER, "agentAt", [i]))[0]);
      }
      return out;
    },
    async agentInfo(address) {
      const r = await call(registerIface, PRECOMPILE_REGISTER, "getAgent", [address]);
      return {
        name: r[0] as string,
        modelHash: r[1] as string,
        capabilities: [...(r[2] as string[])],
        registeredAt: Number(r[3]),
      };
    },
    async heartbeats(address) {
      const topic = heartbeatIface.getEvent("Heartbeat")!.topicHash;
      const logs = await rpc("eth_getLogs", [{
        address: PRECOMPILE_HEARTBEAT,
        fromBlock: "0x0",
        toBlock: "latest",
        topics: [topic, "0x" + getAddress(address).slice(2).toLowerCase().padStart(64, "0")],
      }]) as Array<{ data: string }>;
      return logs.map((l) => Number(BigInt(l.data)));
    },
    async txsTo(to, from) {
      const latest = Number(BigInt(await rpc("eth_blockNumber") as string));
      const out: TxRecord[] = [];
      for (let n = 0; n <= latest; n++) {
        const block = await rpc("eth_getBlockByNumber", ["0x" + n.toString(16), true]) as {
          timestamp: string;
          transactions: Array<{ hash: string; from: string; to: string | null; nonce: string }>;
        };
        for (const tx of block.transactions) {
          if (tx.to?.toLowerCase() !== to.toLowerCase()) continue;
          if (from && tx.from.toLowerCase() !== from.toLowerCase()) continue;
          const receipt = await rpc("eth_getTransactionReceipt", [tx.hash]) as { status: string };
          out.push({
            hash: tx.hash,
            from: getAddress(tx.from),
            to: tx.to,
            nonce: Number(BigInt(tx.nonce)),
            blockNumber: n,
            timestamp: Number(BigInt(block.timestamp)),
            status: Number(BigInt(receipt.status)),
          });
        }
      }
      return out;
    },
    async registerAgent(key, name = "test-agent") {
      const wallet = new Wallet(key);
      const nameBytes = new TextEncoder().encode(name);
      const data = "0x" +
        [...nameBytes].map((b) => b.toString(16).padStart(2, "0")).join("").padEnd(64, "0") +
        keccak256(new TextEncoder().encode("test/model")).slice(2) + "0".repeat(64);
      const nonce = await rpc("eth_getTransactionCount", [wallet.address, "pending"]) as string;
      const gasPrice = await rpc("eth_gasPrice") as string;
      const raw = await wallet.signTransaction({
        to: PRECOMPILE_REGISTER,
        data,
        gasLimit: 300_000n,
        gasPrice: BigInt(gasPrice) * 2n,
        nonce: Number(BigInt(nonce)),
        chainId,
        type: 0,
      });
      const hash = await rpc("eth_sendRawTransaction", [raw]) as string;
      for (let i = 0; i < 200; i++) {
        const receipt = await rpc("eth_getTransactionReceipt", [hash]) as { status: string } | null;
        if (receipt) {
          if (receipt.status !== "0x1") throw new Error(`registration of ${wallet.address} reverted`);
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`registration tx ${hash} was not mined`);
    },
    async increaseTime(seconds) {
      await rpc("evm_increaseTime", [seconds]);
      await rpc("evm_mine", []);
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
  return chain;
}
