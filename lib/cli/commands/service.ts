import type { Command } from "@commander-js/extra-typings";
import { walletFromKeystore } from "../../chain/wallet.ts";
import { ConfigError } from "../../errors.ts";
import {
  applyInstall,
  DEFAULT_ENV_FILE,
  planInstall,
  planProblem,
  SERVICE_ERROR_CODES,
  serviceStatus,
  systemHost,
  uninstall,
} from "../../service/service_installer.ts";
import { parseEnvFile } from "../../service/env_file.ts";
import type { CommandContext } from "../command_context.ts";
import { promptHidden } from "./_wallet_source.ts";
import { availableMemoryBytes } from "../../util/available_memory.ts";

function envFileOf(cmd: { optsWithGlobals(): Record<string, unknown> }): string {
  return givenEnvFile(cmd) ?? DEFAULT_ENV_FILE;
}

/** --env-file as given (uninstall and status otherwise take the installed unit's own). */
function givenEnvFile(cmd: { optsWithGlobals(): Record<string, unknown> }): string | undefined {
  return cmd.optsWithGlobals().envFile as string | undefined;
}

function defaultBinary(): string {
  if (Deno.build.standalone) return Deno.execPath();
  throw new ConfigError(
    SERVICE_ERROR_CODES.BINARY_INVALID,
    "this is not the plumise binary (it runs from a checkout)",
    {
      hint:
        "pass --binary with the path of an installed plumise binary (install.sh puts it in /usr/local/bin)",
    },
  );
}

function requireLinux(dryRun: boolean): void {
  if (Deno.build.os !== "linux" && !dryRun) {
    throw new ConfigError(
      SERVICE_ERROR_CODES.UNSUPPORTED_OS,
      `plumise service needs Linux and systemd (this is ${Deno.build.os})`,
      {
        hint: "run `plumise serve` under your system's supervisor (launchd, a Windows service wrapper)",
      },
    );
  }
}

async function readEnvFileKeys(path: string): Promise<Map<string, string>> {
  try {
    return parseEnvFile(await Deno.readTextFile(path));
  } catch {
    return new Map();
  }
}

/** `plumise service install|uninstall|status`: the node as a hardened systemd service (Linux). */
export function registerService(program: Command, ctx: CommandContext): void {
  const service = program.command("service")
    .description(
      `run the node as a systemd service (Linux); settings live in ${DEFAULT_ENV_FILE} (--env-file)`,
    );

  const install = service.command("install")
    .description(
      "write the unit and env file (mode 0600), enable and start the node; again to upgrade in place",
    )
    .option("--binary <path>", "the plumise binary the service runs (default: this binary)")
    .option(
      "--tier <tier>",
      "tier the service serves (lite, standard, pro, ultra, network, auto) [env PLUMISE_TIER]",
    )
    .option(
      "--keystore <path>",
      "encrypted keystore handed to the service (password: PLUMISE_KEYSTORE_PASSWORD or a prompt)",
    )
    .option("--dry-run", "print the unit and the env file's keys; touch nothing")
    .option("--json", "print one JSON object");
  install.action(async (opts) => {
    requireLinux(Boolean(opts.dryRun));
    const envFile = envFileOf(install);
    const existing = await readEnvFileKeys(envFile);
    const binary = opts.binary ?? defaultBinary();
    let keystorePassword: string | undefined = ctx.env.PLUMISE_KEYSTORE_PASSWORD;
    if (opts.keystore && keystorePassword === undefined && !existing.has("PLUMISE_KEYSTORE_PASSWORD")) {
      keystorePassword = await promptHidden(`Password of ${opts.keystore}: `);
    }
    if (opts.keystore) {
      const password = keystorePassword ?? existing.get("PLUMISE_KEYSTORE_PASSWORD");
      if (password !== undefined) {
        const w = await walletFromKeystore(opts.keystore, password);
        ctx.stderr(`keystore ${opts.keystore}: agent ${w.address}`);
      }
    }
    const memory = availableMemoryBytes();
    const host = systemHost();
    const plan = await planInstall(host, {
      binary,
      tier: opts.tier,
      keystore: opts.keystore,
      keystorePassword,
      privateKey: opts.keystore ? undefined : ctx.env.PLUMISE_PRIVATE_KEY,
      envFile,
      availableMemoryBytes: memory,
    });
    if (opts.dryRun) {
      // what a real install would refuse, said without failing the dry run
      const problem = planProblem(plan);
      if (opts.json) {
        ctx.stdout(JSON.stringify({
          dryRun: true,
          unitPath: plan.unitPath,
          unit: plan.unit,
          envFile: plan.envFilePath,
          envKeys: plan.envKeys,
          systemctl: plan.systemctl,
          ...(problem
            ? { problem: { code: problem.code, message: problem.message, hint: problem.hint } }
            : {}),
        }));
      } else {
        if (problem) ctx.stderr(`warning: install would fail: ${problem.message}\nhint: ${problem.hint}`);
        ctx.write(plan.unit);
        ctx.stderr(
          `(dry run) would write ${plan.unitPath} and ${plan.envFilePath} (mode 0600; keys: ${
            plan.envKeys.join(", ") || "none"
          }), then systemctl ${plan.systemctl.map((a) => a.join(" ")).join("; systemctl ")}`,
        );
      }
      return;
    }
    await applyInstall(host, plan);
    if (opts.json) {
      ctx.stdout(
        JSON.stringify({ unitPath: plan.unitPath, envFile: plan.envFilePath, envKeys: plan.envKeys }),
      );
    } else {
      ctx.stdout(`installed ${plan.unitPath} and ${plan.envFilePath}; the node is starting`);
      ctx.stdout("  logs:   journalctl -u plumise -f");
      ctx.stdout("  state:  plumise service status");
    }
  });

  const remove = service.command("uninstall")
    .description("stop and disable the node and remove the unit (the env file and data stay unless --purge)")
    .option("--purge", "also remove the env file and the node's state and cache directories")
    .option("--json", "print one JSON object");
  remove.action(async (opts) => {
    requireLinux(false);
    const r = await uninstall(systemHost(), { envFile: givenEnvFile(remove), purge: Boolean(opts.purge) });
    if (opts.json) ctx.stdout(JSON.stringify(r));
    else {
      ctx.stdout(r.removed.length ? `removed ${r.removed.join(", ")}` : "nothing was installed");
      if (r.kept.length) ctx.stdout(`kept ${r.kept.join(", ")} (uninstall --purge removes them)`);
    }
  });

  const status = service.command("status")
    .description("the service's state and what is wrong with its files; exit 0 when it runs")
    .option("--json", "print one JSON object");
  status.action(async (opts) => {
    requireLinux(false);
    const s = await serviceStatus(systemHost(), { envFile: givenEnvFile(status) });
    if (opts.json) ctx.stdout(JSON.stringify(s));
    else {
      const p = s.properties;
      ctx.stdout(
        `unit:     ${s.unitPath} (${s.installed ? p.UnitFileState || "installed" : "not installed"})`,
      );
      if (p.ActiveState) {
        ctx.stdout(
          `state:    ${p.ActiveState} (${p.SubState})${
            p.MainPID && p.MainPID !== "0" ? `, pid ${p.MainPID}` : ""
          }` +
            `${p.NRestarts ? `, ${p.NRestarts} restarts` : ""}${
              p.ActiveEnterTimestamp ? `, since ${p.ActiveEnterTimestamp}` : ""
            }`,
        );
      }
      ctx.stdout(`env file: ${s.envFile}${s.envFileMode ? ` (mode ${s.envFileMode})` : " (missing)"}`);
      for (const problem of s.problems) ctx.stdout(`problem:  ${problem}`);
    }
    ctx.setExitCode(s.active && !s.problems.length ? 0 : 1);
  });
}
