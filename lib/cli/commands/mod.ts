/**
 * The list of CLI commands. Each command file exports `register<Name>(program, ctx)`;
 * add one line here to add a command.
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import type { CommandContext } from "../command_context.ts";
import { registerConfig } from "./config.ts";
import { registerServe } from "./serve.ts";
import { registerStatus } from "./status.ts";
import { registerVersion } from "./version.ts";
import { registerWallet } from "./wallet.ts";
import { registerRegister } from "./register.ts";
import { registerClaim } from "./claim.ts";
import { registerGenerate } from "./generate.ts";
import { registerBlocks } from "./blocks.ts";
import { registerSwarm } from "./swarm.ts";
import { registerBench } from "./bench.ts";
import { registerService } from "./service.ts";
import { registerDoctor } from "./doctor.ts";

export type RegisterCommand = (program: Command, ctx: CommandContext) => void;

export const COMMANDS: readonly RegisterCommand[] = [
  registerServe,
  registerStatus,
  registerConfig,
  registerVersion,
  registerWallet,
  registerRegister,
  registerClaim,
  registerBlocks,
  registerGenerate,
  registerSwarm,
  registerBench,
  registerService,
  registerDoctor,
];
