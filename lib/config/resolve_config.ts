/**
 * `resolveConfig`: one pure function from (flags, env, .env, tier) to a frozen, validated config.
 * Precedence: flag > process env > .env file > tier defaults > built-in defaults.
 * @module
 */
import { unknownSettingWarnings } from "./unknown_settings.ts";
import { isIP } from "node:net";
import { ConfigError, registerSecret } from "../errors.ts";
import { type DefaultContext, type KeySpec, SCHEMA } from "./schema.ts";
import { chooseAutoTier, describeBytes, sizeTierFromMemory, TIER_NAMES, TIERS } from "./tiers.ts";
import type { Config, ConfigSource, ResolvedConfig, TierName } from "./types.ts";
import { parseCpuList } from "../util/cpu_list.ts";
import { redactUrl, registerUrlSecrets } from "../util/secret_url.ts";

export interface ResolveInput {
  /** Values from the command line, by config key (strings as typed, booleans for switches). */
  flags?: Partial<Record<keyof Config, string | boolean | string[] | undefined>>;
  /** The process environment. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Parsed `.env` file. */
  dotenv?: Readonly<Record<string, string | undefined>>;
  /** Tier from a flag outside the key table (e.g. `serve --tier`); the `tier` key's own sources also count. */
  tier?: string;
  /** Memory figures for tier `auto`. */
  system?: { availableMemoryBytes: number };
}

interface Raw {
  value: unknown;
  source: ConfigSource;
}

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const PRIVATE_KEY = /^0x[0-9a-fA-F]{64}$/;

/** How a value is named in an error: the flag or the env var that carried it. */
function origin(spec: KeySpec, source: ConfigSource): string {
  if (source === "flag" && spec.flag) return `--${spec.flag}`;
  if (source === ".env") return `${spec.env} (in .env file)`;
  if (source === "tier") return `${spec.env ?? spec.key} (from tier)`;
  return spec.env ?? spec.key;
}

/** How the value of `key` is named in an error, by where it came from (`origin`). */
function originOf(key: keyof Config, sources: Partial<Record<keyof Config, ConfigSource>>): string {
  return origin(SCHEMA.find((s) => s.key === key)!, sources[key] ?? "default");
}

/** Keys whose values are URLs, which may carry credentials (shown and logged redacted). */
const isUrlType = (spec: KeySpec) => spec.type === "url" || spec.type === "wsUrl";

function shown(spec: KeySpec, raw: unknown): string {
  if (spec.secret) return `[redacted, ${String(raw).length} characters]`;
  if (isUrlType(spec) && typeof raw === "string") raw = redactUrl(raw.trim());
  if (typeof raw === "string" && /^[^\s"]+$/.test(raw)) return raw;
  return JSON.stringify(raw);
}

function rangeText(spec: KeySpec): string {
  const unit = spec.unit ? ` ${spec.unit}` : "";
  if (spec.min !== undefined && spec.max !== undefined) return `must be ${spec.min}–${spec.max}${unit}`;
  if (spec.min !== undefined) return `must be ≥ ${spec.min}${unit}`;
  return `must be ≤ ${spec.max}${unit}`;
}

/** Parses one raw value; returns the typed value or an error sentence (without the name). */
function parseValue(
  spec: KeySpec,
  raw: unknown,
): { ok: true; value: unknown } | { ok: false; problem: string } {
  const fail = (problem: string) => ({ ok: false as const, problem });
  const text = typeof raw === "string" && !spec.verbatim ? raw.trim() : raw;
  switch (spec.type) {
    case "string": {
      if (typeof text !== "string" || text === "") return fail("must not be empty");
      return { ok: true, value: text };
    }
    case "path": {
      if (typeof text !== "string" || text === "") return fail("must not be empty");
      // a shell expands `~/` on the command line, nothing does in a .env or a unit's env file
      if (text === "~" || text.startsWith("~/")) {
        const home = Deno.env.get("HOME");
        if (!home) return fail("starts with ~ but HOME is not set; give the full path");
        return { ok: true, value: home.replace(/\/+$/, "") + text.slice(1) };
      }
      if (text.startsWith("~")) return fail("~user paths are not expanded; give the full path");
      return { ok: true, value: text };
    }
    case "int":
    case "number": {
      const s = String(text);
      // decimal only: Number() also reads 0x10, 0b11 and 0o7, which nobody means in a setting
      const n = 0 +
        (spec.type === "int"
          ? (/^[+-]?\d+$/.test(s) ? Number(s) : NaN)
          : (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s) ? Number(s) : NaN));
      if (!Number.isFinite(n)) {
        return fail(`must be ${spec.type === "int" ? "a whole number" : "a number"}; ${rangeText(spec)}`);
      }
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        return fail(rangeText(spec));
      }
      return { ok: true, value: n };
    }
    case "bool": {
      if (typeof text === "boolean") return { ok: true, value: text };
      const s = String(text).toLowerCase();
      if (["1", "true", "yes", "on"].includes(s)) return { ok: true, value: true };
      if (["0", "false", "no", "off", ""].includes(s)) return { ok: true, value: false };
      return fail("must be true or false (also 1/0, yes/no, on/off)");
    }
    case "url": {
      try {
        const u = new URL(String(text));
        if (u.protocol !== "http:" && u.protocol !== "https:") {
          return fail("must be an http:// or https:// URL");
        }
        return { ok: true, value: String(text).replace(/\/+$/, "") };
      } catch {
        return fail("must be an http:// or https:// URL, e.g. http://localhost:26902");
      }
    }
    case "wsUrl": {
      try {
        const u = new URL(String(text));
        if (u.protocol !== "ws:" && u.protocol !== "wss:") return fail("must be a ws:// or wss:// URL");
        return { ok: true, value: String(text) };
      } catch {
        return fail("must be a ws:// or wss:// URL, e.g. wss://gateway.example/ws/agent-relay");
      }
    }
    case "ip": {
      if (typeof text !== "string" || isIP(text) === 0) {
        return fail("must be an IPv4 or IPv6 address, e.g. 203.0.113.7 or 0.0.0.0");
      }
      return { ok: true, value: text };
    }
    case "address": {
      if (typeof text !== "string" || !ADDRESS.test(text)) {
        return fail("must be a 0x-prefixed 20-byte hex address");
      }
      return { ok: true, value: text };
    }
    case "privateKey": {
      if (typeof text !== "string") return fail("must be 32 bytes of hex");
      const key = text.startsWith("0x") || text.startsWith("0X") ? `0x${text.slice(2)}` : `0x${text}`;
      if (!PRIVATE_KEY.test(key)) return fail("must be 32 bytes of hex (64 hex digits, 0x optional)");
      if (/^0x0+$/.test(key)) return fail("must not be zero");
      return { ok: true, value: key.toLowerCase() };
    }
    case "bigint": {
      const s = String(text);
      if (!/^\d+$/.test(s)) {
        return fail("must be a whole number of wei ≥ 0, e.g. 1000000000000000000 for 1 PLM");
      }
      return { ok: true, value: BigInt(s) };
    }
    case "enum": {
      const s = String(text).toLowerCase();
      const refused = spec.refused?.find((r) => r.match.test(s));
      if (refused) return fail(refused.why);
      if (!spec.choices!.includes(s)) return fail(`must be one of ${spec.choices!.join(", ")}`);
      return { ok: true, value: s };
    }
    case "span": {
      const m = /^(\d+):(\d+)$/.exec(String(text));
      if (!m) return fail("must be a:b with whole numbers, e.g. 0:2 for blocks 0 and 1");
      const start = Number(m[1]);
      const end = Number(m[2]);
      if (end <= start) return fail(`end must be greater than start (${start}:${end} is empty)`);
      // NUM_BLOCKS' own bound: no model has more blocks (lib/runtime/model_config.ts)
      if (end > 1024) return fail(`blocks end at 1024 at most (${start}:${end})`);
      return { ok: true, value: Object.freeze({ start, end }) };
    }
    case "cpus": {
      const s = String(text).toLowerCase();
      if (s === "auto" || s === "off") return { ok: true, value: s };
      try {
        return { ok: true, value: Object.freeze(parseCpuList(s)) };
      } catch (err) {
        return fail(`must be auto, off or a CPU list: ${(err as Error).message}`);
      }
    }
    case "list": {
      const items = Array.isArray(text) ? text.map(String) : String(text).split(/[,\s]+/);
      const list = items.map((s) => s.trim()).filter(Boolean);
      const bad = list.filter((s) => !s.startsWith("/"));
      if (bad.length) {
        return fail(`must be comma-separated multiaddrs starting with "/", got ${JSON.stringify(bad[0])}`);
      }
      return { ok: true, value: Object.freeze(list) };
    }
    case "origins": {
      const items = Array.isArray(text) ? text.map(String) : String(text).split(/[,\s]+/);
      const origins: string[] = [];
      for (const item of items.map((s) => s.trim()).filter(Boolean)) {
        let origin: string | undefined;
        try {
          const u = new URL(item);
          const bare = u.pathname === "/" && !u.search && !u.hash && !u.username && !u.password &&
            !/[?#]/.test(item);
          if ((u.protocol === "http:" || u.protocol === "https:") && bare) {
            origin = u.origin;
          }
        } catch {
          // not a URL
        }
        if (!origin) {
          return fail(
            `must be comma-separated origins like https://app.example or http://localhost:3000 (scheme, host and port only), got ${
              JSON.stringify(item)
            }`,
          );
        }
        if (!origins.includes(origin)) origins.push(origin);
      }
      return { ok: true, value: Object.freeze(origins) };
    }
    case "token": {
      if (typeof text !== "string" || !/^[A-Za-z0-9._~+/-]+=*$/.test(text)) {
        return fail(
          "must be a bearer token (RFC 6750): letters, digits and - . _ ~ + / with = only at the end, e.g. the output of `openssl rand -hex 32`",
        );
      }
      return { ok: true, value: text };
    }
  }
}

/**
 * Resolves and validates the whole configuration at once. Throws one `ConfigError`
 * (`CONFIG_INVALID`) that lists every problem.
 */
export function resolveConfig(input: ResolveInput = {}): ResolvedConfig {
  const env = input.env ?? {};
  const dotenv = input.dotenv ?? {};
  const flags = input.flags ?? {};
  const problems: string[] = [];
  const raws = new Map<keyof Config, Raw>();

  // 1. explicit sources: flag > env > .env
  for (const spec of SCHEMA) {
    if (spec.secret || isUrlType(spec)) {
      for (const v of [flags[spec.key], spec.env && env[spec.env], spec.env && dotenv[spec.env]]) {
        if (typeof v !== "string") continue;
        if (spec.secret) registerSecret(spec.verbatim ? v : v.trim());
        else registerUrlSecrets(v.trim());
      }
    }
    const f = flags[spec.key];
    if (f !== undefined && !(Array.isArray(f) && f.length === 0)) {
      raws.set(spec.key, { value: f, source: "flag" });
    } else if (spec.env && env[spec.env] !== undefined && env[spec.env] !== "") {
      raws.set(spec.key, { value: env[spec.env], source: "env" });
    } else if (spec.env && dotenv[spec.env] !== undefined && dotenv[spec.env] !== "") {
      raws.set(spec.key, { value: dotenv[spec.env], source: ".env" });
    }
  }
  if (input.tier !== undefined && raws.get("tier")?.source !== "flag") {
    raws.set("tier", { value: input.tier, source: "flag" });
  }

  const values: Partial<Record<keyof Config, unknown>> = {};
  const sources: Partial<Record<keyof Config, ConfigSource>> = {};
  const take = (spec: KeySpec, raw: Raw) => {
    const parsed = parseValue(spec, raw.value);
    if (parsed.ok) {
      values[spec.key] = parsed.value;
      sources[spec.key] = raw.source;
    } else {
      problems.push(`${origin(spec, raw.source)}=${shown(spec, raw.value)}: ${parsed.problem}`);
    }
  };
  for (const spec of SCHEMA) {
    const raw = raws.get(spec.key);
    if (raw) take(spec, raw);
  }

  // 2. tier defaults (auto: choose by memory)
  let tierReason: string | undefined;
  let tierName: TierName | undefined;
  /** The block count a tier sized from memory chose (when NUM_BLOCKS does not say). */
  let sizedBlocks: number | undefined;
  const avail = input.system?.availableMemoryBytes;
  const availKnown = avail !== undefined && Number.isFinite(avail) && avail > 0;
  if (values.tier === "auto") {
    if (!availKnown) {
      problems.push("--tier=auto: the available memory could not be read; choose a tier by name");
    } else {
      const choice = chooseAutoTier(avail, values.numBlocks as number | undefined);
      if (!choice) {
        problems.push(
          `--tier=auto: not even tier lite fits in ${
            describeBytes(avail)
          } available memory; free memory or set NUM_BLOCKS=1`,
        );
      } else {
        tierName = choice.tier;
        tierReason = choice.reason;
        values.tier = choice.tier;
        sources.tier = "auto";
        if (TIERS[choice.tier].sizedFromMemory) sizedBlocks = choice.numBlocks;
      }
    }
  } else if (typeof values.tier === "string") {
    tierName = values.tier as TierName;
    const t = TIER_NAMES.includes(tierName) ? TIERS[tierName] : undefined;
    if (t?.sizedFromMemory && !raws.has("numBlocks") && !raws.has("blockIndices")) {
      const sized = availKnown ? sizeTierFromMemory(t, avail) : undefined;
      if (!availKnown) {
        problems.push(
          `--tier=${t.name}: its blocks are sized from the available memory, which could not be read; set NUM_BLOCKS`,
        );
      } else if (!sized) {
        problems.push(
          `--tier=${t.name}: not one block of ${t.model} (${
            describeBytes(t.perBlockBytes)
          } at ${t.weights}) fits in ${
            describeBytes(avail)
          } available memory; free memory, or choose a smaller tier (lite, standard)`,
        );
      } else {
        sizedBlocks = sized.numBlocks;
        tierReason = sized.reason;
      }
    }
  }
  if (tierName && TIER_NAMES.includes(tierName)) {
    const t = TIERS[tierName];
    const tierValues: Partial<Record<keyof Config, unknown>> = {
      model: t.model,
      numBlocks: sizedBlocks ?? t.numBlocks,
      weights: t.weights,
    };
    for (const [k, v] of Object.entries(tierValues) as Array<[keyof Config, unknown]>) {
      if (!(k in values) && !raws.has(k)) {
        values[k] = v;
        sources[k] = k === "numBlocks" && sizedBlocks !== undefined ? "auto" : "tier";
      }
    }
  }

  // 3. built-in defaults, in schema order (later defaults may use earlier values)
  const ctx: DefaultContext = { env, values };
  for (const spec of SCHEMA) {
    if (spec.key in values || raws.has(spec.key)) continue;
    if (spec.default === undefined) {
      sources[spec.key] = "default";
      continue;
    }
    values[spec.key] = typeof spec.default === "function"
      ? (spec.default as (c: DefaultContext) => unknown)(ctx)
      : spec.default;
    sources[spec.key] = "default";
  }

  // 4. cross-field checks
  const span = values.blockIndices as { start: number; end: number } | undefined;
  if (span && raws.get("numBlocks") && values.numBlocks !== span.end - span.start) {
    problems.push(
      `--block-indices=${span.start}:${span.end} serves ${
        span.end - span.start
      } blocks but NUM_BLOCKS=${values.numBlocks}; drop one of them`,
    );
  }
  if (span) {
    values.numBlocks = span.end - span.start;
    sources.numBlocks = sources.blockIndices!;
  }
  const dp = values.directPort as number | undefined;
  if (dp !== undefined && dp >= 1 && dp < 1024) {
    // a server links to others' direct ports only from 1024 (lib/wire/link_target.ts): pushes to
    // this one would all fail
    problems.push(
      `${originOf("directPort", sources)}=${dp}: must be 1024 or above (or 0 for any free port, -1 for off)`,
    );
  }
  problems.push(...samePortProblems(values, sources));
  if (values.privateKey && values.keystore) {
    problems.push("PLUMISE_PRIVATE_KEY and --keystore are both set: use one of them");
  }

  if (problems.length) {
    const head = problems.length === 1
      ? "Invalid configuration"
      : `${problems.length} configuration problems`;
    throw new ConfigError("CONFIG_INVALID", `${head}:\n  - ${problems.join("\n  - ")}`, {
      hint: "fix the flags, environment variables or .env entries named above (see `plumise config --help`)",
      problems,
    });
  }
  for (const spec of SCHEMA) if (!(spec.key in sources)) sources[spec.key] = "default";
  return Object.freeze({
    config: Object.freeze(values) as unknown as Config,
    sources: Object.freeze(sources) as Record<keyof Config, ConfigSource>,
    tierReason,
    warnings: Object.freeze([...flagSecretWarnings(values, sources), ...unknownSettingWarnings(env, dotenv)]),
  });
}

/** The API, swarm and direct ports the node would bind twice: the second bind fails, named wrongly. */
function samePortProblems(
  values: Partial<Record<keyof Config, unknown>>,
  sources: Partial<Record<keyof Config, ConfigSource>>,
): string[] {
  const wild = (h: unknown) => h === "0.0.0.0" || h === "::" || h === undefined;
  const ports = [
    { key: "apiPort", host: values.apiHost },
    { key: "p2pPort", host: values.p2pHost },
    { key: "directPort", host: values.p2pHost },
  ] as const;
  const out: string[] = [];
  for (let i = 0; i < ports.length; i++) {
    for (let j = i + 1; j < ports.length; j++) {
      const [a, b] = [ports[i], ports[j]];
      const [pa, pb] = [values[a.key], values[b.key]];
      if (typeof pa !== "number" || pa <= 0 || pa !== pb) continue;
      if (a.host !== b.host && !wild(a.host) && !wild(b.host)) continue;
      out.push(
        `${originOf(a.key, sources)} and ${
          originOf(b.key, sources)
        } are both ${pa}: the node binds each port once, give them different ones`,
      );
    }
  }
  return out;
}

/**
 * Secrets typed on the command line are visible to every user of the machine (`ps`, /proc) and
 * kept in shell history: one warning per such flag, naming the safer place (docs/security.md).
 */
function flagSecretWarnings(
  values: Partial<Record<keyof Config, unknown>>,
  sources: Partial<Record<keyof Config, ConfigSource>>,
): string[] {
  const out: string[] = [];
  for (const spec of SCHEMA) {
    if (sources[spec.key] !== "flag" || !spec.flag) continue;
    const v = values[spec.key];
    if (spec.secret) {
      const alt = spec.key === "privateKey" ? ", or use --keystore" : "";
      out.push(
        `--${spec.flag} on the command line is visible to other users of this machine (ps, /proc) and ` +
          `stays in shell history; set ${spec.env} in the environment or the .env file instead${alt}`,
      );
    } else if (isUrlType(spec) && typeof v === "string" && redactUrl(v) !== v) {
      out.push(
        `--${spec.flag} carries credentials or tokens, visible to other users of this machine (ps, ` +
          `/proc); set ${spec.env} in the environment or the .env file instead`,
      );
    }
  }
  return out;
}

/** Throws a `ConfigError` naming PLUMISE_PRIVATE_KEY when neither a key nor a keystore is configured. */
export function requireWallet(config: Config): void {
  if (!config.privateKey && !config.keystore) {
    throw new ConfigError(
      "MISSING_PRIVATE_KEY",
      "PLUMISE_PRIVATE_KEY is not set and no --keystore was given",
      {
        hint:
          "create a wallet with `plumise wallet new` (its keystore in the data dir is then found without --keystore), or set PLUMISE_PRIVATE_KEY in the environment or the .env file; use --offline for a private swarm without rewards",
      },
    );
  }
}

/** The config as a plain JSON-able object with secrets redacted (for `plumise config`). */
export function redactedConfig(
  resolved: ResolvedConfig,
): Record<string, { value: unknown; source: ConfigSource }> {
  const out: Record<string, { value: unknown; source: ConfigSource }> = {};
  for (const spec of SCHEMA) {
    const v = resolved.config[spec.key];
    const value = v === undefined
      ? null
      : spec.secret
      ? "[redacted]"
      : isUrlType(spec) && typeof v === "string"
      ? redactUrl(v)
      : typeof v === "bigint"
      ? v.toString()
      : v;
    out[spec.key] = { value, source: resolved.sources[spec.key] };
  }
  return out;
}
