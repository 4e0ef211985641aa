import type { Subprocess } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readLines } from "../../test/helpers/read-lines.js";
import { terminate } from "./child.js";
import { freeLoopbackPort, onPickedPorts, PortTaken } from "./free-port.js";

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

export interface StudioProcessOptions {
  logLevel?: string;
  extraArgs?: string[];
  /** Default: a fresh temporary dir, removed by stop(). */
  dataDir?: string;
  /** Default 0: the studio's choice at info level and below, a port picked here above it. */
  port?: number;
  timeoutMs?: number;
  /** Flags for bun itself, before the script (e.g. --cpu-prof). */
  bunArgs?: string[];
  /** Extra environment (STUDIO_DATABASE_URL for a replica on PostgreSQL, STUDIO_PG_DRIVER). */
  env?: Record<string, string>;
  /** A program that runs bun (e.g. valgrind and its flags); it must exec bun in its own process so that the pid is the studio's. */
  wrapper?: string[];
  /** Where a port comes from above info level (a test hands out a taken one first). */
  pickPort?: () => Promise<number>;
}

const SERVER_MAIN = join(import.meta.dir, "..", "..", "server", "main.ts");
const LOGS_URL = ["info", "debug", "trace"];
/**
 * Starts `bun server/main.ts` with a fresh temporary data dir and resolves once it serves. At info
 * level and below it listens on port 0 and its "studio listening" log line carries the URL. Above
 * info that line is not logged, so a free port is picked here; between the pick and the studio's
 * bind another socket may take it (an outbound connection draws its local port from the same
 * range), so a studio that stops because its port is in use is started again on a new pick.
 * Readiness is then the studio answering GET /healthz: a bare TCP connect to a port nobody listens
 * on yet can land on a socket connected to itself. Its output is read to the end so that logging
 * never blocks it.
 */
export async function startStudioProcess(options: StudioProcessOptions = {}): Promise<StudioProcess> {
  const logLevel = options.logLevel ?? "info";
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "studio-bench-"));
  const pickPort = !LOGS_URL.includes(logLevel) && !options.port;
  try {
    if (!pickPort) return await startOnce({ ...options, logLevel, dataDir, port: options.port ?? 0 });
    return await onPickedPorts("studio-process", async () =>
      startOnce({ ...options, logLevel, dataDir, port: await (options.pickPort ?? freeLoopbackPort)() }),
    );
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

async function startOnce({
  logLevel,
  extraArgs = [],
  dataDir,
  port,
  timeoutMs = 30_000,
  bunArgs = [],
  env = {},
  wrapper = [],
}: StudioProcessOptions & { logLevel: string; dataDir: string; port: number }): Promise<StudioProcess> {
  const logsUrl = LOGS_URL.includes(logLevel);
  const proc: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn(
    [...wrapper, process.execPath, ...bunArgs, SERVER_MAIN, "--port", String(port), "--data-dir", dataDir, "--log-level", logLevel, ...extraArgs],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } },
  );
  const onExit = () => proc.kill("SIGKILL");
  process.once("exit", onExit);
  const lines: string[] = [];
  let listening: ((url: string) => void) | undefined;
  let stopped = false;
  const urlPromise = logsUrl
    ? new Promise<string>((resolve) => (listening = resolve))
    : waitForHealthz(`http://127.0.0.1:${port}`, () => stopped).then(() => `http://127.0.0.1:${port}`);

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
  const pumped = Promise.all([pump(proc.stdout), pump(proc.stderr)]);

  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const url = await Promise.race([
      urlPromise,
      proc.exited.then(async (code) => {
        await pumped;
        const output = lines.join("\n");
        const message = `the studio exited with ${code} before listening:\n${output}`;
        throw /already in use/.test(output) ? new PortTaken(`port ${port} was taken before the studio bound it`) : new Error(message);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the studio did not serve GET /healthz (or log "studio listening") within ${timeoutMs} ms:\n${lines.join("\n")}`)), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    return {
      url,
      pid: proc.pid,
      dataDir,
      tail: () => [...lines],
      async stop({ graceMs = 10_000, keep = false } = {}) {
        await terminate(proc, graceMs);
        process.off("exit", onExit);
        if (!keep) rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    stopped = true;
    clearTimeout(timer);
    proc.kill("SIGKILL");
    await proc.exited;
    process.off("exit", onExit);
    throw err;
  }
}

/** Polls GET /healthz until the studio answers 200 with its own body, or until `stop()` says to give up. */
async function waitForHealthz(baseUrl: string, stop: () => boolean): Promise<void> {
  while (!stop()) {
    const ok = await fetch(`${baseUrl}/healthz`, { keepalive: false, signal: AbortSignal.timeout(2_000) }).then(
      async (res) => res.status === 200 && (await res.text()).includes('"ok"'),
      () => false,
    );
    if (ok) return;
    await Bun.sleep(25);
  }
}
