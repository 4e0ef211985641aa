import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { WorkerService, type WatchWorkersResponse, type WorkerInfo } from "../../gen/studio/v1/worker_service_pb.js";
import type { JobRow } from "../jobs/job-row.js";
import { getJobOutput } from "../outputs/get-job-output.js";
import type { OutputStore } from "../outputs/output-store.js";
import type { createPollApi } from "./poll-api.js";
import { runSession, type SessionDeps } from "./session.js";

/** Registers WorkerService and JobService.GetJobOutput on the router. */
export function registerDispatchRoutes(
  router: ConnectRouter,
  deps: SessionDeps & {
    poll: ReturnType<typeof createPollApi>;
    getJob: (id: string) => Promise<JobRow | undefined>;
    outputs: OutputStore;
    /** Every replica's workers (this one's alone on SQLite). */
    listWorkers: () => Promise<WorkerInfo[]>;
    /** WatchWorkers' stream for one caller, ending when the signal aborts. */
    watchWorkers: (signal: AbortSignal) => AsyncGenerator<WatchWorkersResponse>;
  },
): void {
  const { poll } = deps;
  router.service(WorkerService, {
    // Domain errors (DispatchError, OutputError) reach the client through the one mapping (ops/rpc-errors.ts).
    session: (requests, ctx: HandlerContext) => runSession(deps, requests, ctx),
    claimJob: poll.claimJob,
    heartbeat: poll.heartbeat,
    reportProgress: poll.reportProgress,
    completeJob: poll.completeJob,
    completeJobStream: poll.completeJobStream,
    failJob: poll.failJob,
    listWorkers: async () => ({ workers: await deps.listWorkers() }),
    watchWorkers: (_req, ctx: HandlerContext) => deps.watchWorkers(ctx.signal),
  });
  // JobService's one method that reads output bytes is served here, beside the output store; the jobs
  // module registers each of the others by itself (router.rpc), so every path has one handler.
  router.rpc(JobService.method.getJobOutput, (req, ctx) => getJobOutput(deps.getJob, deps.outputs, req, ctx.signal));
}
