#!/usr/bin/env bun
import { Command, CommanderError } from "commander";
import { addSettingFlags } from "../contract/settings.js";
import { CONNECTION_SETTINGS, DEFAULT_SERVER } from "./connection.js";
import { CliError, describeRpcError, EXIT, EXIT_CODES_HELP, type ExitCode } from "./exit-codes.js";
import { processOutput, type Output } from "./output.js";
import { registerJobs } from "./commands/jobs.js";
import { registerModels } from "./commands/models.js";
import { createRunner, type VerbOutcome } from "./commands/runner.js";
import { registerTokens, registerWorkers } from "./commands/workers-tokens.js";
import pkg from "../package.json" with { type: "json" };

/**
 * Builds the `studio` program; a verb resolves the global settings from its flags and `env`, and
 * leaves its exit code (and those globals) in `outcome`.
 */
export function buildProgram(output: Output, outcome: VerbOutcome, env: Record<string, string | undefined>): Command {
  const program = new Command("studio")
    .description("Operate a Studio: its model registry, job queue, workers and tokens.")
    .version(pkg.version, "-V, --version", "print the CLI's version");
  addSettingFlags(program, CONNECTION_SETTINGS)
    .option("--json", "machine-readable JSON output (proto JSON for studio messages)")
    .addHelpText("after", `\n${EXIT_CODES_HELP}\n`)
    .configureOutput({ writeOut: (s) => output.out(s), writeErr: (s) => output.err(s) })
    .exitOverride()
    .showHelpAfterError("(add --help for usage)");
  const run = createRunner(output, outcome, env);
  registerModels(program, run);
  registerJobs(program, run);
  registerWorkers(program, run);
  registerTokens(program, run);
  return program;
}

/**
 * Runs the CLI over argv (as process.argv) with the variables in `env` (STUDIO_SERVER, ...) and resolves
 * to the exit code; never throws.
 */
export async function runCli(argv: string[], output: Output = processOutput, env: Record<string, string | undefined> = process.env): Promise<ExitCode> {
  const outcome: VerbOutcome = { exit: EXIT.ok };
  const program = buildProgram(output, outcome, env);
  try {
    if (argv.length <= 2) {
      program.outputHelp({ error: true });
      return EXIT.usage;
    }
    await program.parseAsync(argv);
    return outcome.exit;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help exits 0; a missing verb (help shown as an error) or a bad flag is a usage error, already explained by commander.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof CliError) {
      output.err(`studio: ${err.message}\n`);
      return err.exitCode;
    }
    // Only a verb's request fails this way, and the verb resolved the globals first.
    const { exitCode, message } = describeRpcError(err, outcome.globals?.server ?? DEFAULT_SERVER);
    output.err(`studio: ${message}\n`);
    return exitCode;
  }
}

if (import.meta.main) {
  const code = await runCli(process.argv);
  process.exit(code);
}
