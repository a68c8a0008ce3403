/**
 * Loads the agent wallet for a CLI command from the resolved config (key or keystore), asking
 * for the keystore password on a terminal (without echo) when it is not in the environment;
 * `withSigner` adds the checked chain connection and the transaction queue that sending needs.
 * @module
 */
import { preflight } from "../../chain/preflight.ts";
import { ChainProvider } from "../../chain/provider.ts";
import { TxQueue } from "../../chain/tx_queue.ts";
import { type AgentWallet, loadWallet } from "../../chain/wallet.ts";
import type { Logger } from "../../util/logger.ts";
import { requireWallet } from "../../config/resolve_config.ts";
import type { Config } from "../../config/types.ts";

const enc = new TextEncoder();

/** Reads a line from a terminal without echo; undefined when stdin is not a terminal or on Ctrl-C. */
export async function promptHidden(question: string): Promise<string | undefined> {
  if (!Deno.stdin.isTerminal()) return undefined;
  Deno.stderr.writeSync(enc.encode(question));
  Deno.stdin.setRaw(true);
  const bytes: number[] = [];
  const buf = new Uint8Array(64);
  try {
    for (;;) {
      const n = await Deno.stdin.read(buf);
      if (n === null) return undefined;
      for (const b of buf.subarray(0, n)) {
        if (b === 3) return undefined; // Ctrl-C
        if (b === 13 || b === 10) return new TextDecoder().decode(new Uint8Array(bytes));
        if (b === 127 || b === 8) bytes.pop();
        else bytes.push(b);
      }
    }
  } finally {
    Deno.stdin.setRaw(false);
    Deno.stderr.writeSync(enc.encode("\n"));
  }
}

/** The wallet of `config` (throws ConfigError when none is configured or it is invalid). */
export function walletFromConfig(config: Config): Promise<AgentWallet> {
  requireWallet(config);
  return loadWallet({
    privateKey: config.privateKey,
    keystore: config.keystore,
    keystorePassword: config.keystorePassword,
    promptPassword: promptHidden,
  });
}

/**
 * Runs `fn` with the configured wallet, a provider for the configured chain that passed the
 * preflight (chain id, balance) and a transaction queue; the provider is closed afterwards.
 */
export async function withSigner<T>(
  config: Config,
  logger: Logger,
  fn: (s: { wallet: AgentWallet; provider: ChainProvider; queue: TxQueue }) => Promise<T>,
  { signal }: { signal: AbortSignal },
): Promise<T> {
  const wallet = await walletFromConfig(config);
  const provider = new ChainProvider({ rpcUrl: config.rpcUrl, chainId: config.chainId });
  try {
    await preflight({ provider, address: wallet.address, logger, signal });
    return await fn({ wallet, provider, queue: new TxQueue({ provider, wallet, logger }) });
  } finally {
    provider.destroy();
  }
}
