import type { Subprocess } from "bun";
import IORedis from "ioredis";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { terminate } from "./child.js";
import { freeLoopbackPort, onPickedPorts, PortTaken, waitForPort } from "./free-port.js";

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
  const { port, proc, dir, onExit } = await onPickedPorts("redis-server", () => spawnRedis(settings));
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

/** redis-server on a port picked here, once it listens; PortTaken when another socket had that port first. */
async function spawnRedis(settings: Record<string, string>) {
  const port = await freeLoopbackPort();
  const dir = mkdtempSync(join(tmpdir(), "studio-bench-redis-"));
  const persistence = Object.entries(settings).flatMap(([k, v]) => [`--${k}`, v]);
  // Its log (stdout) says why it stopped: "bind: Address already in use".
  const proc: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn(
    [REDIS_SERVER_BIN, "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, ...persistence, "--protected-mode", "yes"],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  const output = Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]).then((parts) => parts.join("").trim());
  const onExit = () => {
    proc.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", onExit);
  try {
    await Promise.race([
      waitForPort(port),
      proc.exited.then(async (code) => {
        const log = await output;
        if (/Address already in use/i.test(log)) throw new PortTaken(`port ${port} was taken before redis-server bound it`);
        throw new Error(`redis-server exited with ${code} before listening: ${log}`);
      }),
    ]);
  } catch (err) {
    proc.kill("SIGKILL");
    await proc.exited;
    process.off("exit", onExit);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return { port, proc, dir, onExit };
}
