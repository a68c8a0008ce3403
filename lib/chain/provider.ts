/**
 * The one JSON-RPC client of chain/: an ethers JsonRpcProvider with the options that work for
 * Plumise (`cacheTimeout: -1` so back-to-back txs see fresh nonces, `batchMaxCount: 1`, a static
 * network so nothing is probed behind our back) plus per-call timeouts, abort signals, validated
 * results and errors mapped to `ChainError`.
 * @module
 */
import { FetchRequest, JsonRpcProvider, Network } from "ethers";
import { ChainError } from "../errors.ts";
import { withTimeout } from "../util/abort.ts";
import { redactUrl, registerUrlSecrets } from "../util/secret_url.ts";
import { toChainError } from "./_rpc_errors.ts";

export interface ChainProviderOptions {
  rpcUrl: string;
  /** Expected chain id (also the static network of the provider). */
  chainId: number;
  /** Default per-call timeout in ms (default 15 000). */
  timeoutMs?: number;
}

export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface TxReceipt {
  readonly hash: string;
  readonly status: number;
  readonly blockNumber: number;
  readonly gasUsed: bigint;
  readonly effectiveGasPrice: bigint;
  readonly logs: ReadonlyArray<{ address: string; topics: string[]; data: string }>;
}

const HEX = /^0x[0-9a-fA-F]*$/;

function quantity(v: unknown, what: string, rpcUrl: string): bigint {
  if (typeof v !== "string" || !HEX.test(v) || v.length < 3 || v.length > 66) {
    throw new ChainError(
      "CHAIN_BAD_RESPONSE",
      `${what} from ${rpcUrl} is not a hex quantity: ${JSON.stringify(v)?.slice(0, 80)}`,
      {
        hint: "check PLUMISE_RPC_URL points at a Plumise/Ethereum JSON-RPC endpoint",
      },
    );
  }
  return BigInt(v);
}

export class ChainProvider {
  /** The URL connected to, credentials included: never print it, print `displayUrl`. */
  readonly rpcUrl: string;
  /** The URL as shown in messages: userinfo and query tokens redacted (docs/security.md). */
  readonly displayUrl: string;
  readonly chainId: number;
  readonly provider: JsonRpcProvider;
  readonly #timeoutMs: number;
  #destroyed = false;

  constructor(options: ChainProviderOptions) {
    this.rpcUrl = options.rpcUrl;
    registerUrlSecrets(options.rpcUrl);
    this.displayUrl = redactUrl(options.rpcUrl);
    this.chainId = options.chainId;
    this.#timeoutMs = options.timeoutMs ?? 15_000;
    let req: FetchRequest;
    try {
      req = new FetchRequest(options.rpcUrl);
    } catch (err) {
      throw new ChainError("CHAIN_BAD_URL", `invalid RPC URL ${JSON.stringify(this.displayUrl)}`, {
        hint: "set PLUMISE_RPC_URL to an http(s) URL, e.g. http://localhost:26902",
        cause: err,
      });
    }
    req.timeout = this.#timeoutMs;
    this.provider = new JsonRpcProvider(req, Network.from(options.chainId), {
      staticNetwork: true,
      cacheTimeout: -1,
      batchMaxCount: 1,
    });
  }

  /** One JSON-RPC call with a timeout; failures become ChainErrors. */
  async send<T = unknown>(method: string, params: unknown[], options: CallOptions = {}): Promise<T> {
    if (this.#destroyed) throw new ChainError("CHAIN_CLOSED", `provider for ${this.displayUrl} is closed`);
    try {
      return await withTimeout(
        options.timeoutMs ?? this.#timeoutMs,
        () => this.provider.send(method, params) as Promise<T>,
        { signal: options.signal },
      );
    } catch (err) {
      throw toChainError(err, method, this.displayUrl);
    }
  }

  /** `eth_chainId` as a number. */
  async getChainId(options?: CallOptions): Promise<number> {
    return Number(quantity(await this.send("eth_chainId", [], options), "eth_chainId", this.displayUrl));
  }

  async getBalance(address: string, options?: CallOptions): Promise<bigint> {
    return quantity(
      await this.send("eth_getBalance", [address, "latest"], options),
      "eth_getBalance",
      this.displayUrl,
    );
  }

  /** The next nonce of `address`: counting its pool transactions (`pending`), or mined ones only (`latest`). */
  async getNonce(
    address: string,
    options?: CallOptions & { blockTag?: "pending" | "latest" },
  ): Promise<number> {
    return Number(
      quantity(
        await this.send("eth_getTransactionCount", [address, options?.blockTag ?? "pending"], options),
        "nonce",
        this.displayUrl,
      ),
    );
  }

  async getGasPrice(options?: CallOptions): Promise<bigint> {
    return quantity(await this.send("eth_gasPrice", [], options), "eth_gasPrice", this.displayUrl);
  }

  async getBlockNumber(options?: CallOptions): Promise<number> {
    return Number(
      quantity(await this.send("eth_blockNumber", [], options), "eth_blockNumber", this.displayUrl),
    );
  }

  /** `eth_call`; returns the 0x-hex output. Reverts throw ChainError `CHAIN_REVERT` with the reason. */
  async call(
    tx: { to: string; data: string; from?: string; gas?: bigint },
    options: CallOptions & { blockTag?: string } = {},
  ): Promise<string> {
    const req: Record<string, string> = { to: tx.to, data: tx.data };
    if (tx.from) req.from = tx.from;
    if (tx.gas) req.gas = "0x" + tx.gas.toString(16);
    const out = await this.send("eth_call", [req, options.blockTag ?? "latest"], options);
    if (typeof out !== "string" || !HEX.test(out)) {
      throw new ChainError(
        "CHAIN_BAD_RESPONSE",
        `eth_call on ${this.displayUrl} returned ${JSON.stringify(out)?.slice(0, 80)}`,
      );
    }
    return out;
  }

  /** Broadcasts a signed tx; returns its hash. */
  async sendRaw(raw: string, options?: CallOptions): Promise<string> {
    const hash = await this.send("eth_sendRawTransaction", [raw], options);
    if (typeof hash !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(hash)) {
      throw new ChainError(
        "CHAIN_BAD_RESPONSE",
        `eth_sendRawTransaction returned ${JSON.stringify(hash)?.slice(0, 80)}`,
      );
    }
    return hash;
  }

  /** Whether the node knows the transaction `hash` (pending in its pool, or mined). */
  async hasTransaction(hash: string, options?: CallOptions): Promise<boolean> {
    const tx = await this.send<Record<string, unknown> | null>("eth_getTransactionByHash", [hash], options);
    return tx !== null && tx !== undefined && typeof tx === "object";
  }

  /** The receipt, or null while pending. */
  async getReceipt(hash: string, options?: CallOptions): Promise<TxReceipt | null> {
    const r = await this.send<Record<string, unknown> | null>("eth_getTransactionReceipt", [hash], options);
    if (r === null || r === undefined) return null;
    if (typeof r !== "object") {
      throw new ChainError(
        "CHAIN_BAD_RESPONSE",
        `receipt of ${hash} is not an object: ${JSON.stringify(r)?.slice(0, 80)}`,
      );
    }
    const logs = Array.isArray(r.logs) ? r.logs as TxReceipt["logs"] : [];
    return {
      hash,
      status: Number(quantity(r.status, "receipt.status", this.displayUrl)),
      blockNumber: Number(quantity(r.blockNumber, "receipt.blockNumber", this.displayUrl)),
      gasUsed: quantity(r.gasUsed, "receipt.gasUsed", this.displayUrl),
      effectiveGasPrice: r.effectiveGasPrice === undefined
        ? 0n
        : quantity(r.effectiveGasPrice, "receipt.effectiveGasPrice", this.displayUrl),
      logs,
    };
  }

  /** Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.provider.destroy();
  }
}
