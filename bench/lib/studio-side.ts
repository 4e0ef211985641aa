import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { join } from "node:path";
import { CreateJobRequestSchema, CreateJobsRequestSchema, JobService, type CreateJobRequest, type CreateJobsRequest } from "../../gen/studio/v1/job_service_pb.js";
import { createWritableIterable } from "@connectrpc/connect/protocol";
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

/** How the benchmark's client creates jobs: a CreateJob call each, or a request each on one CreateJobs stream. */
export type CreateMode = "unary" | "stream";

/** The benchmark's job: the small image task on BENCH_MODEL. */
const benchJob = (i: number) =>
  create(CreateJobRequestSchema, {
    model: BENCH_MODEL,
    task: create(TaskSchema, { kind: { case: "image", value: create(ImageTaskSchema, { prompt: `bench job ${i}`, batchCount: 1 }) } }),
  });

/**
 * A JobService client over HTTP/2 (Connect, binary) creating the benchmark's job: with `unary`
 * one CreateJob call per job; with `stream` the creates go on one CreateJobs stream, those asked
 * for together in one request, and are answered in order (as a producer that creates many would).
 */
export function jobCreator(url: string, mode: CreateMode = "unary"): (i: number) => Promise<string> {
  const jobs = createClient(JobService, createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true }));
  if (mode === "unary")
    return async (i) => {
      const res = await jobs.createJob(benchJob(i));
      if (!res.job) throw new Error("CreateJob answered without a job");
      return res.job.id;
    };
  const requests = createWritableIterable<CreateJobsRequest>();
  const waiting: { resolve: (id: string) => void; reject: (err: unknown) => void }[] = [];
  void (async () => {
    try {
      for await (const response of jobs.createJobs(requests)) {
        for (const answer of response.answers) {
          const w = waiting.shift();
          if (!answer.result?.job) w?.reject(new Error(`CreateJobs refused a job: ${answer.errorCode} ${answer.errorMessage}`));
          else w?.resolve(answer.result.job.id);
        }
      }
      throw new Error("the CreateJobs stream ended");
    } catch (err) {
      for (const w of waiting.splice(0)) w.reject(err);
    }
  })();
  // The creates asked for by the code running now leave together, in one request (a producer's batching).
  let batch: CreateJobRequest[] | undefined;
  return (i) =>
    new Promise<string>((resolve, reject) => {
      waiting.push({ resolve, reject });
      if (!batch) {
        batch = [];
        queueMicrotask(() => {
          // Not awaited: the next batch may be asked for before the transport takes this one.
          requests.write(create(CreateJobsRequestSchema, { jobs: batch! })).catch(() => {});
          batch = undefined;
        });
      }
      batch.push(benchJob(i));
    });
}

/** M single-slot worker processes on a running studio, and a JobService client. */
export async function startStudioSide(
  url: string,
  { workers, studioPid, createMode = "unary", name = "Studio" }: { workers: number; studioPid?: number; createMode?: CreateMode; name?: string },
): Promise<StudioSide> {
  const children = await startSessionWorkers(url, { count: workers });
  return {
    name,
    workers: children,
    serverPid: studioPid,
    create: jobCreator(url, createMode),
    async stop() {
      await Promise.all(children.map((c) => c.stop()));
    },
  };
}
