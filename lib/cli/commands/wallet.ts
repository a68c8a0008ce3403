import type { Command } from "@commander-js/extra-typings";
import { dirname } from "node:path";
import { createKeystore } from "../../chain/wallet.ts";
import { ConfigError } from "../../errors.ts";
import type { CommandContext } from "../command_context.ts";
import { addConfigOptions } from "../config_options.ts";
import { promptHidden, walletFromConfig } from "./_wallet_source.ts";

/** `plumise wallet new|address`: create an encrypted keystore, or show the configured wallet's address. */
export function registerWallet(program: Command, ctx: CommandContext): void {
  const wallet = program.command("wallet").description("create or inspect the agent wallet");

  const create = wallet.command("new")
    .description("create a new wallet in an encrypted JSON keystore (mode 0600); prints only its address")
    .option("--json", "print one JSON object");
  addConfigOptions(create, ["keystore", "dataDir"]);
  create.action(async (opts) => {
    const { config } = ctx.resolve(opts as Record<string, unknown>);
    const path = config.keystore ?? `${config.dataDir}/keystore.json`;
    let password = config.keystorePassword;
    if (password === undefined) {
      password = await promptHidden("New keystore password: ");
      if (password !== undefined && (await promptHidden("Repeat the password: ")) !== password) {
        throw new ConfigError("KEYSTORE_PASSWORD_MISMATCH", "the two passwords differ", {
          hint: "run it again",
        });
      }
    }
    if (password === undefined) {
      throw new ConfigError("KEYSTORE_PASSWORD_MISSING", `no password for the new keystore ${path}`, {
        hint: "set PLUMISE_KEYSTORE_PASSWORD, or run on a terminal to be prompted",
      });
    }
    await Deno.mkdir(config.keystore ? dirname(path) : config.dataDir, { recursive: true, mode: 0o700 });
    const { address } = await createKeystore(path, password);
    ctx.stdout(opts.json ? JSON.stringify({ address, keystore: path }) : address);
    if (!opts.json) {
      const use = config.keystore ? ` --keystore ${path}` : ""; // the data dir's is found without it
      ctx.stderr(
        `keystore: ${path}\nnext: send this address a little PLM for gas, then run plumise serve${use}`,
      );
    }
  });

  const show = wallet.command("address").description("print the configured wallet's address")
    .option("--json", "print one JSON object");
  addConfigOptions(show, ["privateKey", "keystore"]);
  show.action(async (opts) => {
    const { config } = ctx.resolve(opts as Record<string, unknown>);
    const w = await walletFromConfig(config);
    ctx.stdout(opts.json ? JSON.stringify({ address: w.address }) : w.address);
  });
}
