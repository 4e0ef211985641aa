import type { StudioContext, StudioModule } from "../context.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { createJobService, type JobTexts } from "./job-service.js";
import type { JobStore } from "./job-store.js";
import type { JobWaits } from "./job-waits.js";
import type { CreateJobRequest } from "../../gen/studio/v1/job_service_pb.js";
import type { JobRow } from "./job-row.js";

export type { JobStore } from "./job-store.js";
export { jobFromRow, statusFromRow, statusToRow, type JobRow, type JobStatusName } from "./job-row.js";

/** The jobs module: its store and JobService (all but GetJobOutput, which dispatch registers). */
export interface JobsModule extends StudioModule {
  store: JobStore;
  /** CreateJob's validation, defaults and write (batched like the RPC's); throws JobError. */
  createJob(req: CreateJobRequest): Promise<{ row: JobRow; created: boolean }>;
}

/** The jobs module; its store resolves model names at write time against the registry, in the write's transaction. */
export function createJobsModule(
  ctx: StudioContext,
  { waits, texts }: { waits?: JobWaits; texts?: JobTexts } = {},
): JobsModule {
  const store = ctx.storage.jobs;
  const shutdown = new AbortController();
  const service = createJobService({
    store,
    events: ctx.events,
    defaultMaxAttempts: ctx.config.defaultMaxAttempts,
    shutdown: shutdown.signal,
    waits,
    texts,
  });
  const { createJob, createJobs, promoteJob, retryJob, cancelJob, getJob, listJobs, watchJobs } = service;
  return {
    name: "jobs",
    store,
    createJob: service.createRow,
    routes: (router) => {
      router.rpc(JobService.method.createJob, createJob);
      router.rpc(JobService.method.createJobs, createJobs);
      router.rpc(JobService.method.promoteJob, promoteJob);
      router.rpc(JobService.method.retryJob, retryJob);
      router.rpc(JobService.method.cancelJob, cancelJob);
      router.rpc(JobService.method.getJob, getJob);
      router.rpc(JobService.method.listJobs, listJobs);
      router.rpc(JobService.method.watchJobs, watchJobs);
    },
    stop: () => shutdown.abort(),
  };
}
