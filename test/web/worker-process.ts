import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

/** A worker child process the test owns; stop() reaps it and removes its dirs. */
export interface WorkerProcess {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** What the worker printed, for failure messages. */
  output(): string;
  /** Resolves with the first JSON log line the predicate accepts (already printed or yet to come). */
  waitForLog(accept: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** Starts the real worker program with a slow synthetic engine (argv array, no shell) against a studio. */
export function startSlowSyntheticWorker(opts: {
  server: string;
  token: string;
  name: string;
  stepMs: number;
}): WorkerProcess {
  const dir = mkdtempSync(join(tmpdir(), "studio-web-worker-"));
  const proc = Bun.spawn(
    [
      process.execPath,
      join(import.meta.dir, "..", "..", "worker", "main.ts"),
      "--server",
      opts.server,
      "--token",
      opts.token,
      "--name",
      opts.name,
      "--cache-dir",
      join(dir, "cache"),
      "--work-dir",
      join(dir, "work"),
      "--engines",
      "synthetic",
      "--synthetic-step-ms",
      String(opts.stepMs),
      "--progress",
      "log",
    ],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  let out = "";
  const decoder = new TextDecoder();
  const waiters = new Set<() => void>();
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) {
      out += decoder.decode(chunk);
      for (const w of waiters) w();
    }
  };
  const logLines = () =>
    out.split("\n").flatMap((l) => {
      try {
        const v: unknown = JSON.parse(l);
        return v && typeof v === "object" ? [v as Record<string, unknown>] : [];
      } catch {
        return [];
      }
    });
  void drain(proc.stdout);
  void drain(proc.stderr);
  return {
    proc,
    output: () => out,
    waitForLog(accept, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = logLines().find(accept);
          if (!hit) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`the worker did not log the awaited line within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async stop() {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        const killer = setTimeout(() => proc.kill("SIGKILL"), 3000);
        await proc.exited;
        clearTimeout(killer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
