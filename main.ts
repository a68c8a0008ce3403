import { runCli } from "./lib/cli/cli.ts";

// Explicit exit: some dependencies keep timers alive after stop() under Deno.
Deno.exit(await runCli(Deno.args));
