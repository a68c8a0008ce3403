/**
 * The shape of one configuration key in the schema (lib/config/schema.ts): its environment
 * variable, flag, type, range, choices, default and description.
 * @module
 */
import type { Config } from "./types.ts";

export type KeyType =
  | "string"
  | "int"
  | "number"
  | "bool"
  | "url"
  | "wsUrl"
  /** An IPv4 or IPv6 address literal. */
  | "ip"
  | "address"
  | "privateKey"
  | "bigint"
  | "enum"
  | "span"
  | "list"
  | "origins"
  | "token"
  | "cpus"
  | "path";

/** Values already resolved (defaults may depend on them, e.g. HOME). */
export interface DefaultContext {
  env: Readonly<Record<string, string | undefined>>;
  values: Partial<Record<keyof Config, unknown>>;
}

export interface KeySpec {
  readonly key: keyof Config;
  /** Environment variable (also read from the .env file). */
  readonly env?: string;
  /** Long flag without dashes, e.g. "rpc-url". */
  readonly flag?: string;
  /** Placeholder shown in help, e.g. "<url>"; omitted for booleans. */
  readonly arg?: string;
  readonly type: KeyType;
  readonly description: string;
  readonly min?: number;
  readonly max?: number;
  /** Unit used in range messages, e.g. "seconds". */
  readonly unit?: string;
  readonly choices?: readonly string[];
  /**
   * Values that name something real this build cannot do, each refused with its own reason
   * instead of "must be one of …" (e.g. `DEVICE=cuda` before any engine uses a GPU).
   */
  readonly refused?: readonly { readonly match: RegExp; readonly why: string }[];
  /** Redacted in every output. */
  readonly secret?: boolean;
  /** Taken exactly as given, leading and trailing spaces included (a password). */
  readonly verbatim?: boolean;
  /** Tiers set this key. */
  readonly fromTier?: boolean;
  /** Built-in default (a function when it depends on other values). */
  readonly default?: unknown | ((ctx: DefaultContext) => unknown);
  /** Default shown in docs/help when the default is computed. */
  readonly defaultDoc?: string;
}
