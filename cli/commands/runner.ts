import type { Command } from "commander";
import { resolveGlobalOptions, type GlobalOptions } from "../connection.js";
import { EXIT, type ExitCode } from "../exit-codes.js";
import type { Output } from "../output.js";

/**
 * Wraps a verb's body for commander: hands it the global options (resolved against the
 * environment), the output and its own options and arguments, and records the exit code it
 * returns (ok by default). Errors propagate to main.ts, which turns them into messages and exit codes.
 */
export type Runner = <O, A extends unknown[]>(
  body: (g: GlobalOptions, o: Output, opts: O, ...args: A) => Promise<ExitCode | void>,
) => (...commanderArgs: unknown[]) => Promise<void>;

/**
 * What the verb that ran leaves for main.ts: the exit code it finished with, and the globals it
 * resolved, so that an RPC error can name the studio it tried (--server or STUDIO_SERVER alike).
 */
export interface VerbOutcome {
  exit: ExitCode;
  globals?: GlobalOptions;
}

/** Creates the runner; each verb resolves the globals from its flags and `env`, and records into `outcome`. */
export function createRunner(output: Output, outcome: VerbOutcome, env: Record<string, string | undefined>): Runner {
  return (body) =>
    async (...commanderArgs: unknown[]) => {
      const cmd = commanderArgs[commanderArgs.length - 1] as Command;
      const opts = commanderArgs[commanderArgs.length - 2];
      const args = commanderArgs.slice(0, -2);
      const g = resolveGlobalOptions(cmd.optsWithGlobals(), env);
      outcome.globals = g;
      const code = await body(g, output, opts as never, ...(args as never));
      outcome.exit = code ?? EXIT.ok;
    };
}
