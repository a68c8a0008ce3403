import type { Command } from "@commander-js/extra-typings";
import { VERSION } from "../../util/version.ts";
import type { CommandContext } from "../command_context.ts";

/** `plumise version [--json]`: the release, Deno/V8/TypeScript versions and the platform. */
export function registerVersion(program: Command, ctx: CommandContext): void {
  program
    .command("version")
    .description("print the plumise version and platform")
    .option("--json", "print one JSON object")
    .action((opts) => {
      const info = {
        plumise: VERSION,
        deno: Deno.version.deno,
        v8: Deno.version.v8,
        typescript: Deno.version.typescript,
        os: Deno.build.os,
        arch: Deno.build.arch,
      };
      if (opts.json) ctx.stdout(JSON.stringify(info));
      else ctx.stdout(`plumise ${info.plumise} (deno ${info.deno}, ${info.os}/${info.arch})`);
    });
}
