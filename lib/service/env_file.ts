/**
 * The service's environment file (`/etc/plumise/plumise.env`): `KEY=VALUE` lines that both
 * systemd's `EnvironmentFile=` and plumise's `--env-file` (dotenv) read the same way. Installing
 * again updates the keys it manages and keeps every other line (an operator's settings and
 * comments) as it was, but a line systemd would read otherwise than dotenv (`export KEY=…`, a
 * comment after a bare value), which is written in the form both read alike.
 * @module
 */
import { parse as parseDotenv } from "dotenv";
import { ConfigError } from "../errors.ts";

const KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const BARE_RE = /^[A-Za-z0-9_@%+=:,./-]*$/;

/**
 * One value in the file's syntax: bare when safe, else single-quoted (literal for both readers),
 * else double-quoted when it holds a `'` but no `"`, `\\` or `$` (which the two readers treat
 * differently inside double quotes).
 */
export function quoteEnvValue(key: string, value: string): string {
  if (/[\n\r\0]/.test(value)) {
    throw new ConfigError("SERVICE_ENV_VALUE", `${key}: a value in the env file cannot span lines`, {
      hint: "pass a single-line value",
    });
  }
  if (BARE_RE.test(value)) return value;
  if (!value.includes("'")) return `'${value}'`;
  if (!/["\\$]/.test(value)) return `"${value}"`;
  throw new ConfigError(
    "SERVICE_ENV_VALUE",
    `${key}: a value with both ' and one of " \\ $ cannot be written`,
    {
      hint: "systemd and dotenv would read it differently; choose a value (a password) without that mix",
    },
  );
}

/** The `KEY=VALUE` pairs of a file's text, read as plumise's `--env-file` reads them (dotenv). */
export function parseEnvFile(text: string): Map<string, string> {
  return new Map(Object.entries(parseDotenv(text)));
}

/**
 * `text` with the keys of `set` given those values (replacing their lines in place, or appended)
 * and the keys in `remove` dropped; every other line stays.
 */
export function mergeEnvFile(
  text: string,
  set: ReadonlyMap<string, string>,
  remove: readonly string[] = [],
  header = "",
): string {
  for (const k of [...set.keys(), ...remove]) {
    if (!KEY_RE.test(k)) throw new Error(`not an environment variable name: ${k}`);
  }
  const done = new Set<string>();
  const lines: string[] = [];
  const parsed = parseEnvFile(text);
  for (const line of text === "" ? [] : text.replace(/\n$/, "").split("\n")) {
    const m = line.match(/^\s*(export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/);
    const key = m?.[2];
    if (key && remove.includes(key)) continue;
    if (key && set.has(key)) {
      if (done.has(key)) continue;
      lines.push(`${key}=${quoteEnvValue(key, set.get(key)!)}`);
      done.add(key);
      continue;
    }
    // systemd reads `export KEY=…` as no variable at all and keeps a `# comment` after a bare value
    // in it, where dotenv (which the installer checked the file with) does not: such a line is
    // written in the form both read alike, with the value dotenv read
    const raw = m?.[3].trim() ?? "";
    const bare = !/^['"`]/.test(raw);
    if (key && bare && (raw.startsWith("#") || /\S#/.test(raw.replace(/\s#.*$/, "")))) {
      // `abc#def`: dotenv reads abc, systemd abc#def; which one is meant only the operator knows
      throw new ConfigError(
        "SERVICE_ENV_VALUE",
        `${key}: the value ${JSON.stringify(raw)} holds a # that dotenv and systemd read differently`,
        {
          hint:
            `quote it in the env file (${key}='…', or "…" when it holds a ') or remove what follows the #`,
        },
      );
    }
    if (key && (m![1] || (bare && /\s#/.test(raw))) && parsed.has(key)) {
      lines.push(`${key}=${quoteEnvValue(key, parsed.get(key)!)}`);
      continue;
    }
    lines.push(line);
  }
  if (!lines.length && header) lines.push(...header.split("\n"));
  for (const [k, v] of set) if (!done.has(k)) lines.push(`${k}=${quoteEnvValue(k, v)}`);
  return lines.join("\n") + "\n";
}
