/**
 * Builds commander options from the config schema, so every flag shows the env var
 * behind it and maps back to its config key.
 * @module
 */
import { Option } from "@commander-js/extra-typings";
import { flagAttribute, SCHEMA, SCHEMA_BY_KEY } from "../config/schema.ts";
import type { Config } from "../config/types.ts";

// deno-lint-ignore no-explicit-any
type AnyCommand = { addOption(option: Option<any, any, any, any, any, any>): unknown };

function defaultText(key: keyof Config): string {
  const spec = SCHEMA_BY_KEY.get(key)!;
  if (spec.defaultDoc) return spec.defaultDoc;
  if (spec.default === undefined || typeof spec.default === "function") return "";
  if (Array.isArray(spec.default)) return spec.default.length ? spec.default.join(",") : "";
  return String(spec.default);
}

/** Adds the flags of the given config keys (those that have a flag) to `cmd`. */
export function addConfigOptions<C extends AnyCommand>(cmd: C, keys: readonly (keyof Config)[]): C {
  for (const key of keys) {
    const spec = SCHEMA_BY_KEY.get(key);
    if (!spec) throw new Error(`unknown config key ${key}`);
    if (!spec.flag) continue;
    const envPart = spec.env ? `env ${spec.env}` : "";
    const def = defaultText(key);
    const extra = [envPart, def ? `default ${def}` : "", spec.fromTier ? "set by --tier" : ""].filter(Boolean)
      .join("; ");
    const flags = spec.type === "bool" ? `--${spec.flag}` : `--${spec.flag} ${spec.arg ?? "<value>"}`;
    const opt = new Option(flags, `${spec.description}${extra ? ` [${extra}]` : ""}`);
    cmd.addOption(opt);
  }
  return cmd;
}

/** Config keys that have a flag (all of them, for `serve`). */
export const ALL_FLAG_KEYS: readonly (keyof Config)[] = SCHEMA.filter((s) => s.flag).map((s) => s.key);

/** Maps commander's parsed options back to config keys (flags only; undefined when absent). */
export function flagsFromOptions(
  opts: Record<string, unknown>,
): Partial<Record<keyof Config, string | boolean>> {
  const out: Partial<Record<keyof Config, string | boolean>> = {};
  for (const spec of SCHEMA) {
    if (!spec.flag) continue;
    const v = opts[flagAttribute(spec.flag)];
    if (typeof v === "string" || typeof v === "boolean") out[spec.key] = v;
  }
  return out;
}
