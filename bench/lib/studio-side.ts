import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { join } from "node:path";
import { CreateJobRequestSchema, JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ImageTaskSchema, TaskSchema } from "../../gen/studio/v1/job_pb.js";
import { spawnChild, type Child } from "./child.js";
import type { QueueUnderTest } from "./queue-phases.js";
import { isReady, type FromWorker, type ToWorker } from "./worker-messages.js";

/** The model every benchmark job asks for: the studio seeds it on a fresh database. */
export const BENCH_MODEL = "synthetic";

const SESSION_WORKER = join(import.meta.dir, "session-worker.ts");

/** Our queue under test: JobService for creating, session-worker processes taking offers. */
export interface StudioSide extends QueueUnderTest {
  stop(): Promise<void>;
}

/** Starts `count` processes of `sessionsEach` simulated workers and waits until all are welcomed. */
export async function startSessionWorkers(
  url: string,
  { count, sessionsEach = 1, perConnection = 1, readyTimeoutMs = 60_000 }: {
    count: number;
    sessionsEach?: number;
    perConnection?: number;
    readyTimeoutMs?: number;
  },
): Promise<Child<ToWorker, FromWorker>[]> {
  const children = Array.from({ length: count }, (_, i) =>
    spawnChild<ToWorker, FromWorker>([
      process.execPath,
      SESSION_WORKER,
      "--url",
      url,
      "--sessions",
      String(sessionsEach),
      "--per-connection",
      String(perConnection),
      "--name",
      `bench-p${i}`,
    ]),
  );
  try {
    await Promise.all(children.map((c) => c.waitFor(isReady, readyTimeoutMs)));
  } catch (err) {
    await Promise.all(children.map((c) => c.stop()));
    throw err;
  }
  return children;
}

/** A JobService client over HTTP/2, creating the benchmark's small image task on BENCH_MODEL. */
export function jobCreator(url: string): (i: number) => Promise<string> {
  const jobs = createClient(JobService, createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true }));
  return async (i) => {
    const res = await jobs.createJob(
      create(CreateJobRequestSchema, {
        model: BENCH_MODEL,
        task: create(TaskSchema, {
          kind: { case: "image", value: create(ImageTaskSchema, { prompt: `bench job ${i}`, batchCount: 1 }) },
        }),
      }),
    );
    if (!res.job) throw new Error("CreateJob answered without a job");
    return res.job.id;
  };
}

/** M single-slot worker processes on a running studio, and a JobService client. */
export async function startStudioSide(
  url: string,
  { workers, studioPid }: { workers: number; studioPid?: number },
): Promise<StudioSide> {
  const children = await startSessionWorkers(url, { count: workers });
  return {
    name: "Studio",
    workers: children,
    serverPid: studioPid,
    create: jobCreator(url),
    async stop() {
      await Promise.all(children.map((c) => c.stop()));
    },
  };
}
