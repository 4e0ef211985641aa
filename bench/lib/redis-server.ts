import type { Subprocess } from "bun";
import { freeLoopbackPort, waitForPort } from "./free-port.js";

/** A private redis-server for one benchmark run. */
export interface RedisServer {
  host: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** REDIS_SERVER, else redis-server on PATH, else where Debian's package puts it. */
export const REDIS_SERVER_BIN = process.env.REDIS_SERVER ?? Bun.which("redis-server") ?? "/usr/bin/redis-server";

/**
 * Starts redis-server on a free loopback port with persistence off (`--save ""`, `--appendonly no`):
 * BullMQ's side of the comparison runs in memory, as most BullMQ deployments' hot path does.
 * The caller must `stop()` it; it is also killed if this process exits.
 */
export async function startRedis(): Promise<RedisServer> {
  const port = await freeLoopbackPort();
  const proc: Subprocess = Bun.spawn(
    [REDIS_SERVER_BIN, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
    { stdout: "ignore", stderr: "pipe" },
  );
  const onExit = () => proc.kill("SIGKILL");
  process.once("exit", onExit);
  try {
    await Promise.race([
      waitForPort(port),
      proc.exited.then(async (code) => {
        const err = await new Response(proc.stderr as ReadableStream).text();
        throw new Error(`redis-server exited with ${code} before listening: ${err.trim()}`);
      }),
    ]);
  } catch (err) {
    proc.kill("SIGKILL");
    await proc.exited;
    throw err;
  }
  return {
    host: "127.0.0.1",
    port,
    pid: proc.pid,
    async stop() {
      process.off("exit", onExit);
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
}
