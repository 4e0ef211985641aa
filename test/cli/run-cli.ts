import { join } from "node:path";

const CLI = join(import.meta.dir, "../../cli/main.ts");

export interface CliRun {
  exit: number;
  stdout: string;
  stderr: string;
}

/** Runs `bun cli/main.ts ...args` as a child process (argv, no shell) with only the env given (plus PATH). */
export async function runCli(args: string[], env: Record<string, string> = {}, stdin?: string): Promise<CliRun> {
  const child = Bun.spawn(["bun", CLI, ...args], {
    stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
    stdout: "pipe",
    stderr: "pipe",
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
  });
  const [stdout, stderr, exit] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { exit, stdout, stderr };
}
