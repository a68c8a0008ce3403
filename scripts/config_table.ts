/**
 * Prints the configuration table of docs/configuration.md from the config schema:
 * `deno run scripts/config_table.ts` (tests/house_test.ts keeps the document in step).
 * @module
 */
import { SCHEMA } from "../lib/config/schema.ts";

export function configTable(): string {
  const rows = ["| env | flag | default | meaning |", "|---|---|---|---|"];
  for (const s of SCHEMA.filter((s) => s.env)) {
    const flag = s.flag ? `\`--${s.flag}${s.arg ? " " + s.arg : ""}\``.replace(/\|/g, "\\|") : "(env only)";
    let def = s.defaultDoc ??
      (typeof s.default === "function" || s.default === undefined ? "—" : String(s.default));
    if (Array.isArray(s.default) && !s.default.length) def = "—";
    const range = s.min !== undefined && s.max !== undefined && s.type !== "number"
      ? ` (${s.min}–${s.max}${s.unit ? " " + s.unit : ""})`
      : "";
    const choices = s.choices ? ` (${s.choices.join(", ")})` : "";
    const meaning = `${s.description}${range}${choices}${s.secret ? "; secret, never printed" : ""}${
      s.fromTier ? "; set by the tier" : ""
    }`;
    rows.push(
      `| \`${s.env}\` | ${flag} | ${def === "—" ? "—" : `\`${def}\``} | ${meaning.replace(/\|/g, "\\|")} |`,
    );
  }
  return rows.join("\n");
}

if (import.meta.main) console.log(configTable());
