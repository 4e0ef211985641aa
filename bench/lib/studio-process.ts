import type { Subprocess } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readLines } from "../../test/helpers/read-lines.js";
import { freeLoopbackPort, waitForPort } from "./free-port.js";

/** A studio server running as a child process, so that its CPU and RSS can be read from /proc. */
export interface StudioProcess {
  url: string;
  pid: number;
  dataDir: string;
  /** The last lines it logged, for error messages. */
  tail(): string[];
  /** SIGTERM (graceful stop), SIGKILL after graceMs; removes the data dir unless keep. */
  stop(options?: { graceMs?: number; keep?: boolean }): Promise<void>;
}

const SERVER_MAIN = join(import.meta.dir, "..", "..", "server", "main.ts");

/**
 * Starts `bun server/main.ts` on port 0 with a fresh temporary data dir and waits for its
 * "studio listening" log line, which carries the URL. Below info level that line is not logged,
 * so a free port is picked here and waited on instead. Its output is read to the end so that
 * logging never blocks it.
 */
export async function startStudioProcess({
  logLevel = "info",
  extraArgs = [],
  dataDir = mkdtempSync(join(tmpdir(), "studio-bench-")),
  port = 0,
  timeoutMs = 30_000,
  bunArgs = [],
  env = {},
  wrapper = [],
}: {
  logLevel?: string;
  extraArgs?: string[];
  dataDir?: string;
  port?: number;
  timeoutMs?: number;
  /** Flags for bun itself, before the script (e.g. --cpu-prof). */
  bunArgs?: string[];
  /** Extra environment (STUDIO_DATABASE_URL for a replica on PostgreSQL, STUDIO_PG_DRIVER). */
  env?: Record<string, string>;
  /** A program that runs bun (e.g. valgrind and its flags); it must exec bun in its own process so that the pid is the studio's. */
  wrapper?: string[];
} = {}): Promise<StudioProcess> {
  const logsUrl = ["info", "debug", "trace"].includes(logLevel);
  if (!logsUrl && port === 0) port = await freeLoopbackPort();
  const proc: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn(
    [...wrapper, process.execPath, ...bunArgs, SERVER_MAIN, "--port", String(port), "--data-dir", dataDir, "--log-level", logLevel, ...extraArgs],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } },
  );
  const onExit = () => proc.kill("SIGKILL");
  process.once("exit", onExit);
  const lines: string[] = [];
  let listening: ((url: string) => void) | undefined;
  const urlPromise = logsUrl
    ? new Promise<string>((resolve) => (listening = resolve))
    : waitForPort(port, { timeoutMs }).then(() => `http://127.0.0.1:${port}`);

  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const line of readLines(stream)) {
      lines.push(line);
      if (lines.length > 50) lines.shift();
      if (listening && line.includes('"studio listening"')) {
        try {
          const url = (JSON.parse(line) as { url?: string }).url;
          if (url) listening(url);
        } catch {
          /* not a JSON line: keep waiting */
        }
      }
    }
  };
  void pump(proc.stdout);
  void pump(proc.stderr);

  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const url = await Promise.race([
      urlPromise,
      proc.exited.then((code) => {
        throw new Error(`the studio exited with ${code} before listening:\n${lines.join("\n")}`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the studio did not log "studio listening" within ${timeoutMs} ms:\n${lines.join("\n")}`)), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    return {
      url,
      pid: proc.pid,
      dataDir,
      tail: () => [...lines],
      async stop({ graceMs = 10_000, keep = false } = {}) {
        if (proc.exitCode === null && proc.signalCode === null) {
          proc.kill("SIGTERM");
          const kill = setTimeout(() => proc.kill("SIGKILL"), graceMs);
          await proc.exited;
          clearTimeout(kill);
        }
        process.off("exit", onExit);
        if (!keep) rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    clearTimeout(timer);
    proc.kill("SIGKILL");
    await proc.exited;
    process.off("exit", onExit);
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}
