#!/usr/bin/env bun
/**
 * One BullMQ worker process for bench/dispatch.ts: a `Worker` with concurrency 1 on the given
 * queue, whose processor records when it got the job and returns the 1 KiB result. Completions
 * count when BullMQ's `completed` event fires (the result is stored in Redis by then).
 *
 * argv: <redis host> <redis port> <queue name>
 */
import { Worker } from "bullmq";
import { epochMs } from "./stats.js";
import { ONE_KIB_STRING } from "./payload.js";
import { ReceiptLog, toParent } from "./worker-messages.js";
import { exitWithParent } from "./child.js";

exitWithParent();

const [host, port, queueName] = process.argv.slice(2);
if (!host || !port || !queueName) {
  console.error("usage: bullmq-worker.ts <redis host> <redis port> <queue name>");
  process.exit(2);
}

const log = new ReceiptLog(toParent);
log.listen();

const worker = new Worker(
  queueName,
  async (job) => {
    log.receive(job.id!, epochMs());
    return ONE_KIB_STRING;
  },
  { connection: { host, port: Number(port) }, concurrency: 1 },
);
worker.on("completed", (job) => log.complete(job.id!, epochMs()));
worker.on("error", (err) => toParent({ type: "error", message: String(err) }));
await worker.waitUntilReady();
toParent({ type: "ready", sessions: 1 });

const shutdown = async () => {
  await worker.close();
  process.exit(0);
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
