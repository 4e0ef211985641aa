import type { Subprocess } from "bun";
import IORedis from "ioredis";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { terminate } from "./child.js";
import { freeLoopbackPort, waitForPort } from "./free-port.js";

/** A private redis-server for one benchmark run. */
export interface RedisServer {
  host: string;
  port: number;
  pid: number;
  /** Its persistence settings as the running server reports them (CONFIG GET appendonly, appendfsync, save). */
  settings: Record<string, string>;
  stop(): Promise<void>;
}

/** REDIS_SERVER, else redis-server on PATH, else where Debian's package puts it. */
export const REDIS_SERVER_BIN = process.env.REDIS_SERVER ?? Bun.which("redis-server") ?? "/usr/bin/redis-server";

/**
 * Redis's documented production persistence: the append-only file, fsync'd once a second
 * (https://redis.io/docs/latest/operate/oss_and_stack/management/persistence/). The studio's SQLite
 * commits are durable, so BullMQ's side is compared with a Redis that keeps its jobs too.
 */
export const DURABLE_REDIS: Readonly<Record<string, string>> = { appendonly: "yes", appendfsync: "everysec", save: "" };

/**
 * Starts redis-server on a free loopback port in a fresh temp dir (its AOF lives there) with the
 * given persistence settings (default DURABLE_REDIS). The caller must `stop()` it; it is also
 * killed if this process exits, and its dir is removed on stop.
 */
export async function startRedis(settings: Record<string, string> = DURABLE_REDIS): Promise<RedisServer> {
  const port = await freeLoopbackPort();
  const dir = mkdtempSync(join(tmpdir(), "studio-bench-redis-"));
  const persistence = Object.entries(settings).flatMap(([k, v]) => [`--${k}`, v]);
  const proc: Subprocess = Bun.spawn(
    [REDIS_SERVER_BIN, "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, ...persistence, "--protected-mode", "yes"],
    { stdout: "ignore", stderr: "pipe" },
  );
  const onExit = () => {
    proc.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
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
    process.off("exit", onExit);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const client = new IORedis({ host: "127.0.0.1", port, lazyConnect: true });
  const reported: Record<string, string> = {};
  try {
    await client.connect();
    for (const key of ["appendonly", "appendfsync", "save"]) {
      const [, value] = (await client.config("GET", key)) as [string, string];
      reported[key] = value;
    }
  } finally {
    client.disconnect();
  }
  return {
    host: "127.0.0.1",
    port,
    pid: proc.pid,
    settings: reported,
    async stop() {
      process.off("exit", onExit);
      await terminate(proc, 5000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
