import { Queue } from "bullmq";
import { join } from "node:path";
import { spawnChild } from "./child.js";
import type { QueueUnderTest } from "./queue-phases.js";
import type { RedisServer } from "./redis-server.js";
import { isReady, type FromWorker, type ToWorker } from "./worker-messages.js";

/** BullMQ under test: a Queue in this process and one Worker process (concurrency 1) per slot. */
export interface BullmqSide extends QueueUnderTest {
  stop(): Promise<void>;
}

const WORKER_SCRIPT = join(import.meta.dir, "bullmq-worker.ts");

/**
 * Starts `workers` BullMQ worker processes on a fresh queue and a Queue to add jobs with. The job
 * data is the same small image task our side sends (a prompt and a batch of one).
 */
export async function startBullmqSide(redis: RedisServer, { workers }: { workers: number }): Promise<BullmqSide> {
  const queueName = `bench-${process.pid}-${Date.now()}`;
  const connection = { host: redis.host, port: redis.port };
  const queue = new Queue(queueName, { connection });
  await queue.waitUntilReady();
  const children = Array.from({ length: workers }, () =>
    spawnChild<ToWorker, FromWorker>([process.execPath, WORKER_SCRIPT, redis.host, String(redis.port), queueName]),
  );
  await Promise.all(children.map((c) => c.waitFor(isReady, 30_000)));
  return {
    name: "BullMQ",
    workers: children,
    serverPid: redis.pid,
    async create(i) {
      const job = await queue.add("image", { prompt: `bench job ${i}`, batchCount: 1 });
      return job.id!;
    },
    async stop() {
      await Promise.all(children.map((c) => c.stop()));
      await queue.obliterate({ force: true }).catch(() => {});
      await queue.close();
    },
  };
}
