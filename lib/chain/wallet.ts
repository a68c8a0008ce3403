/**
 * The agent's wallet: from a raw private key or an encrypted JSON keystore. The key is
 * registered as a secret (redacted from every log line and error) and never printed.
 * @module
 */
import { encryptKeystoreJson, Wallet } from "ethers";
import { ConfigError, registerSecret } from "../errors.ts";
import { createFileAtomic } from "../util/write_text_atomic.ts";

/** The agent wallet (an ethers `Wallet`; named here so other folders need not import ethers). */
export type AgentWallet = Wallet;

export interface WalletSource {
  /** 32-byte hex key, `0x` optional. */
  privateKey?: string;
  /** Path of an encrypted JSON keystore (used when no privateKey is given). */
  keystore?: string;
  keystorePassword?: string;
  /** Asks for the keystore password (a terminal prompt); used when no password is given. */
  promptPassword?: (question: string) => Promise<string | undefined>;
}

/**
 * Validates and normalises a private key to `0x` + 64 lowercase hex. The error never
 * contains the key itself, only what is wrong with it.
 */
export function parsePrivateKey(input: string): string {
  const trimmed = input.trim();
  const hex = trimmed.startsWith("0x") || trimmed.startsWith("0X") ? trimmed.slice(2) : trimmed;
  registerSecret(trimmed);
  const problems: string[] = [];
  if (hex.length !== 64) problems.push(`it has ${hex.length} hex characters, expected 64`);
  if (!/^[0-9a-fA-F]*$/.test(hex)) problems.push("it contains characters that are not hex digits");
  if (problems.length === 0 && /^0+$/.test(hex)) problems.push("it is zero");
  if (problems.length > 0) {
    throw new ConfigError(
      "INVALID_PRIVATE_KEY",
      `PLUMISE_PRIVATE_KEY is not a valid private key: ${problems.join("; ")}`,
      {
        hint: "set PLUMISE_PRIVATE_KEY to 32 bytes of hex (64 characters, 0x optional), or use --keystore",
      },
    );
  }
  const key = "0x" + hex.toLowerCase();
  registerSecret(key);
  return key;
}

/** A wallet from a private key (validated; never echoed). */
export function walletFromKey(privateKey: string): Wallet {
  const key = parsePrivateKey(privateKey);
  try {
    return new Wallet(key);
  } catch (err) {
    throw new ConfigError("INVALID_PRIVATE_KEY", "PLUMISE_PRIVATE_KEY is not a valid secp256k1 private key", {
      hint: "the key is out of range for secp256k1; generate one with `plumise wallet new`",
      cause: err instanceof Error ? new Error(err.name) : undefined,
    });
  }
}

/** Decrypts a keystore file. */
export async function walletFromKeystore(path: string, password: string): Promise<Wallet> {
  let json: string;
  try {
    // a keystore is a small file: a device (/dev/zero), a pipe or a huge file is refused unread
    const info = await Deno.stat(path);
    if (!info.isFile || info.size > 1_000_000) {
      throw new ConfigError(
        "KEYSTORE_INVALID",
        `keystore ${path} is ${info.isFile ? `${info.size} bytes` : "not a regular file"}, not a keystore`,
        { hint: "point --keystore at an encrypted JSON keystore" },
      );
    }
    json = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError("KEYSTORE_UNREADABLE", `cannot read keystore ${path}: ${(err as Error).message}`, {
      hint: "check --keystore / PLUMISE_KEYSTORE; create one with `plumise wallet new --keystore PATH`",
    });
  }
  if (json.length > 1_000_000) {
    throw new ConfigError("KEYSTORE_INVALID", `keystore ${path} is ${json.length} bytes, not a keystore`, {
      hint: "point --keystore at an encrypted JSON keystore",
    });
  }
  registerSecret(password);
  try {
    const w = await Wallet.fromEncryptedJson(json, password).catch((err) => {
      // the password was trimmed before it was taken verbatim: a keystore made then from an
      // env value with spaces around it has the trimmed one
      if (password.trim() === password || !/password/i.test(String(err?.message))) throw err;
      return Wallet.fromEncryptedJson(json, password.trim());
    });
    registerSecret(w.privateKey);
    return new Wallet(w.privateKey);
  } catch (err) {
    const msg = (err as Error).message ?? "";
    const wrongPassword = /password/i.test(msg);
    throw new ConfigError(
      wrongPassword ? "KEYSTORE_BAD_PASSWORD" : "KEYSTORE_INVALID",
      wrongPassword
        ? `wrong password for keystore ${path}`
        : `keystore ${path} is not a valid encrypted JSON keystore`,
      {
        hint: "check PLUMISE_KEYSTORE_PASSWORD (or the prompt), and that the file is an Ethereum V3 keystore",
      },
    );
  }
}

/** Loads the agent wallet from a key or a keystore (prompting for the password when allowed). */
export async function loadWallet(source: WalletSource): Promise<Wallet> {
  if (source.privateKey) return walletFromKey(source.privateKey);
  if (source.keystore) {
    let password = source.keystorePassword;
    if (password === undefined && source.promptPassword) {
      password = await source.promptPassword(`Password for keystore ${source.keystore}: `);
    }
    if (password === undefined) {
      throw new ConfigError("KEYSTORE_PASSWORD_MISSING", `no password for keystore ${source.keystore}`, {
        hint: "set PLUMISE_KEYSTORE_PASSWORD, or run on a terminal to be prompted",
      });
    }
    return await walletFromKeystore(source.keystore, password);
  }
  throw new ConfigError(
    "WALLET_MISSING",
    "no wallet configured: neither PLUMISE_PRIVATE_KEY nor --keystore is set",
    {
      hint:
        "create a wallet with `plumise wallet new` (found in the data dir without --keystore), or set PLUMISE_PRIVATE_KEY in .env",
    },
  );
}

export interface CreateKeystoreOptions {
  /** scrypt N (default 131072, the Ethereum default; tests use a small one). */
  scryptN?: number;
}

/**
 * Creates a new random wallet, writes it encrypted to `path` (mode 0600, never overwriting)
 * and returns its address.
 */
export async function createKeystore(
  path: string,
  password: string,
  options: CreateKeystoreOptions = {},
): Promise<{ address: string }> {
  if (password.length === 0) {
    throw new ConfigError("KEYSTORE_PASSWORD_EMPTY", "refusing to create a keystore with an empty password", {
      hint: "set PLUMISE_KEYSTORE_PASSWORD or type a password at the prompt",
    });
  }
  registerSecret(password);
  const wallet = Wallet.createRandom();
  registerSecret(wallet.privateKey);
  const json = await encryptKeystoreJson(
    { address: wallet.address, privateKey: wallet.privateKey },
    password,
    { scrypt: { N: options.scryptN ?? 131072 } },
  );
  try {
    await createFileAtomic(path, json, { mode: 0o600 });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new ConfigError("KEYSTORE_EXISTS", `keystore ${path} already exists; not overwriting it`, {
        hint: "choose another path, or move the existing file away",
      });
    }
    throw new ConfigError("KEYSTORE_UNWRITABLE", `cannot write keystore ${path}: ${(err as Error).message}`, {
      hint: "check the directory exists and is writable",
    });
  }
  await Deno.chmod(path, 0o600).catch(() => {});
  return { address: wallet.address };
}
