#!/usr/bin/env bun
import { Command, CommanderError, Option } from "commander";
import { DEFAULT_SERVER, type GlobalOptions } from "./connection.js";
import { CliError, describeRpcError, EXIT, EXIT_CODES_HELP, type ExitCode } from "./exit-codes.js";
import { processOutput, type Output } from "./output.js";
import { registerJobs } from "./commands/jobs.js";
import { registerModels } from "./commands/models.js";
import { createRunner } from "./commands/runner.js";
import { registerTokens, registerWorkers } from "./commands/workers-tokens.js";
import pkg from "../package.json" with { type: "json" };

/** Builds the `studio` program; `exit` receives the code a verb finished with. */
export function buildProgram(output: Output, setExit: (code: ExitCode) => void): Command {
  const program = new Command("studio")
    .description("Operate a Studio: its model registry, job queue, workers and tokens.")
    .version(pkg.version, "-V, --version", "print the CLI's version")
    .addOption(new Option("--server <url>", "the studio's URL (http:// or https://)").env("STUDIO_SERVER").default(DEFAULT_SERVER))
    .addOption(new Option("--token <token>", "bearer token (admin, client or worker)").env("STUDIO_TOKEN"))
    .addOption(new Option("--ca-file <file>", "PEM CA certificate to trust for an https:// studio").env("STUDIO_CA_FILE"))
    .option("--json", "machine-readable JSON output (proto JSON for studio messages)")
    .addHelpText("after", `\n${EXIT_CODES_HELP}\n`)
    .configureOutput({ writeOut: (s) => output.out(s), writeErr: (s) => output.err(s) })
    .exitOverride()
    .showHelpAfterError("(add --help for usage)");
  const run = createRunner(output, setExit);
  registerModels(program, run);
  registerJobs(program, run);
  registerWorkers(program, run);
  registerTokens(program, run);
  return program;
}

/** Runs the CLI over argv (as process.argv) and resolves to the exit code; never throws. */
export async function runCli(argv: string[], output: Output = processOutput): Promise<ExitCode> {
  let exit: ExitCode = EXIT.ok;
  const program = buildProgram(output, (code) => (exit = code));
  try {
    if (argv.length <= 2) {
      program.outputHelp({ error: true });
      return EXIT.usage;
    }
    await program.parseAsync(argv);
    return exit;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help exits 0; a missing verb (help shown as an error) or a bad flag is a usage error, already explained by commander.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof CliError) {
      output.err(`studio: ${err.message}\n`);
      return err.exitCode;
    }
    const g = program.opts<GlobalOptions>();
    const { exitCode, message } = describeRpcError(err, g.server);
    output.err(`studio: ${message}\n`);
    return exitCode;
  }
}

if (import.meta.main) {
  const code = await runCli(process.argv);
  process.exit(code);
}
