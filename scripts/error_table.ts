/**
 * Prints the error code table of docs/operations.md from the registry (`ERROR_CODES`,
 * lib/error_codes.ts): `deno run scripts/error_table.ts` (tests/house_test.ts keeps the document in
 * step).
 * @module
 */
import { ERROR_CODES } from "../lib/error_codes.ts";

export function errorTable(): string {
  const rows = ["| code | meaning |", "|---|---|"];
  for (const [code, meaning] of Object.entries(ERROR_CODES)) {
    rows.push(`| \`${code}\` | ${meaning.replace(/\|/g, "\\|")} |`);
  }
  return rows.join("\n");
}

if (import.meta.main) console.log(errorTable());
