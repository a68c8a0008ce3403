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
  const decoder = new TextDecoder(); // streaming: a character split across reads stays whole
  const buf = new Uint8Array(64);
  let line = "";
  try {
    for (;;) {
      const n = await Deno.stdin.read(buf);
      if (n === null) return undefined;
      const r = editLine(line, decoder.decode(buf.subarray(0, n), { stream: true }));
      if (r.end === "cancel") return undefined;
      if (r.end === "enter") return r.line;
      line = r.line;
    }
  } finally {
    Deno.stdin.setRaw(false);
    Deno.stderr.writeSync(enc.encode("\n"));
  }
}

/**
 * A hidden line being typed, after `keys` (decoded text) arrive: Backspace removes the last
 * character (not a byte of it), Ctrl-U clears the line, Enter ends it, Ctrl-C (or Ctrl-D on an
 * empty line) cancels; other control characters are ignored.
 */
export function editLine(line: string, keys: string): { line: string; end?: "enter" | "cancel" } {
  for (const ch of keys) {
    if (ch === "\x03" || (ch === "\x04" && line === "")) return { line, end: "cancel" };
    if (ch === "\r" || ch === "\n") return { line, end: "enter" };
    if (ch === "\x7f" || ch === "\b") line = Array.from(line).slice(0, -1).join("");
    else if (ch === "\x15") line = "";
    else if (ch >= " ") line += ch;
  }
  return { line };
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
