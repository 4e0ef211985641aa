import type { Subprocess } from "bun";
import { join } from "node:path";
import { compiledWorker } from "./worker-binary.js";

/** The demo's worker process. */
export interface DemoWorker {
  /** Which program runs, for the demo's output. */
  describe: string;
  readonly exited: boolean;
  readonly exitCode: number | null;
  /** The last lines it printed, for error messages. */
  tail(): string[];
  /** SIGTERM (the worker drains), SIGKILL after graceMs; resolves once reaped. */
  stop(graceMs?: number): Promise<void>;
}

const ROOT = join(import.meta.dir, "..");

/**
 * Starts a synthetic worker against the studio: dist/studio-worker when built, else the source
 * with bun. Its cache and per-job work dirs go under workDir (the demo's temp dir). No shell.
 */
export async function startDemoWorker(url: string, { workDir, slots }: { workDir: string; slots: number }): Promise<DemoWorker> {
  const binary = compiledWorker();
  const program = binary ? [binary] : [process.execPath, join(ROOT, "worker", "main.ts")];
  const proc: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn(
    [
      ...program,
      "--server",
      url,
      "--engines",
      "synthetic",
      "--name",
      "demo-worker",
      "--slots",
      String(slots),
      "--cache-dir",
      join(workDir, "worker-cache"),
      "--work-dir",
      join(workDir, "worker-jobs"),
      "--progress",
      "log",
      "--log-level",
      "warn",
    ],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  const onExit = () => proc.kill("SIGKILL");
  process.once("exit", onExit);
  const lines: string[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream)
      for (const line of decoder.decode(chunk, { stream: true }).split("\n")) {
        if (line.trim() === "") continue;
        lines.push(line);
        if (lines.length > 40) lines.shift();
      }
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  return {
    describe: binary ? `${binary} (compiled)` : "bun worker/main.ts (from source; `bun run build:worker` makes the binary)",
    get exited() {
      return proc.exitCode !== null || proc.signalCode !== null;
    },
    get exitCode() {
      return proc.exitCode;
    },
    tail: () => [...lines],
    async stop(graceMs = 15_000) {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGTERM");
        const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
        await proc.exited;
        clearTimeout(timer);
      }
      process.off("exit", onExit);
    },
  };
}
