import type { Command } from "@commander-js/extra-typings";
import { redactedConfig } from "../../config/resolve_config.ts";
import { SCHEMA_BY_KEY } from "../../config/schema.ts";
import type { CommandContext } from "../command_context.ts";
import { addConfigOptions, ALL_FLAG_KEYS } from "../config_options.ts";

/** `plumise config [--json]`: the resolved configuration with the source of every value, secrets redacted. */
export function registerConfig(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command("config")
    .description("print the resolved configuration and where each value came from (secrets redacted)")
    .option("--json", "print one JSON object {key: {value, source}}");
  addConfigOptions(cmd, ALL_FLAG_KEYS);
  cmd.action((opts) => {
    const resolved = ctx.resolve(opts as Record<string, unknown>);
    const table = redactedConfig(resolved);
    if (opts.json) {
      ctx.stdout(JSON.stringify({ config: table, tierReason: resolved.tierReason ?? null }));
      return;
    }
    const width = Math.max(
      ...Object.keys(table).map((k) => (SCHEMA_BY_KEY.get(k as never)?.env ?? k).length),
    );
    if (resolved.tierReason) ctx.stdout(`# ${resolved.tierReason}`);
    for (const [key, { value, source }] of Object.entries(table)) {
      const name = SCHEMA_BY_KEY.get(key as never)?.env ?? key;
      const v = value === null
        ? "(unset)"
        : Array.isArray(value)
        ? value.join(",") || "(none)"
        : typeof value === "object" && "start" in value && "end" in value
        ? `${value.start}:${value.end}` // a span, as it is written
        : String(value);
      ctx.stdout(`${name.padEnd(width)}  ${v}  (${source})`);
    }
  });
}
