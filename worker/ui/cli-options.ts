import { Command } from "commander";
import { readSettings } from "../../contract/settings.js";
import { defaultDirs, workerConfigSchema, workerSettings, type WorkerConfig } from "../config.js";

/**
 * `studio-worker [flags]`: the worker's settings from argv and the environment (flags win), validated;
 * throws ConfigError naming every bad setting. Commander itself exits for --help, --version and unknown flags.
 */
export function parseWorkerArgs(
  argv: string[],
  { version = "0.0.0", env = process.env }: { version?: string; env?: Record<string, string | undefined> } = {},
): WorkerConfig {
  const program = new Command("studio-worker")
    .description(
      "Studio worker: keeps a session to the studio, downloads the model files each job names (verified, " +
        "cached) and runs them with sd-cli (images) or llama-server (text). SIGTERM drains; a second signal stops at once.",
    )
    .version(version)
    .showHelpAfterError()
    .allowExcessArguments(false);
  const dirs = defaultDirs(env);
  return readSettings(program, workerSettings(dirs), workerConfigSchema(dirs), { argv, env });
}
