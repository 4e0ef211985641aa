import type { Command } from "commander";
import type { GlobalOptions } from "../connection.js";
import { EXIT, type ExitCode } from "../exit-codes.js";
import type { Output } from "../output.js";

/**
 * Wraps a verb's body for commander: hands it the global options, the output and
 * its own options and arguments, and records the exit code it returns (ok by default).
 * Errors propagate to main.ts, which turns them into messages and exit codes.
 */
export type Runner = <O, A extends unknown[]>(
  body: (g: GlobalOptions, o: Output, opts: O, ...args: A) => Promise<ExitCode | void>,
) => (...commanderArgs: unknown[]) => Promise<void>;

/** Creates the runner; setExit receives each verb's exit code. */
export function createRunner(output: Output, setExit: (code: ExitCode) => void): Runner {
  return (body) =>
    async (...commanderArgs: unknown[]) => {
      const cmd = commanderArgs[commanderArgs.length - 1] as Command;
      const opts = commanderArgs[commanderArgs.length - 2];
      const args = commanderArgs.slice(0, -2);
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const code = await body(g, output, opts as never, ...(args as never));
      setExit(code ?? EXIT.ok);
    };
}
