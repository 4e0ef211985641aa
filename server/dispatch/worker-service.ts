import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { WorkerService, type WatchWorkersResponse, type WorkerInfo } from "../../gen/studio/v1/worker_service_pb.js";
import type { JobRow } from "../jobs/job-row.js";
import { getJobOutput } from "../outputs/get-job-output.js";
import type { OutputStore } from "../outputs/output-store.js";
import { toConnectError } from "./dispatch-error.js";
import type { createPollApi } from "./poll-api.js";
import { runSession, type SessionDeps } from "./session.js";

/** Maps domain errors (DispatchError, OutputError) to ConnectErrors at the edge. */
function edge<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args) => {
    try {
      return await fn(...args);
    } catch (err) {
      throw toConnectError(err);
    }
  };
}

async function* edgeStream<T>(gen: AsyncGenerator<T>): AsyncGenerator<T> {
  try {
    yield* gen;
  } catch (err) {
    throw toConnectError(err);
  }
}

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
    session: (requests, ctx: HandlerContext) => edgeStream(runSession(deps, requests, ctx)),
    claimJob: edge(poll.claimJob),
    heartbeat: edge(poll.heartbeat),
    reportProgress: edge(poll.reportProgress),
    completeJob: edge(poll.completeJob),
    completeJobStream: edge(poll.completeJobStream),
    failJob: edge(poll.failJob),
    listWorkers: async () => ({ workers: await deps.listWorkers() }),
    watchWorkers: (_req, ctx: HandlerContext) => deps.watchWorkers(ctx.signal),
  });
  // The jobs module registers JobService first (with an unimplemented GetJobOutput
  // or none); connect-node's adapter keeps the LAST handler registered for a path,
  // and app.ts composes dispatch after jobs, so this one serves the output bytes.
  router.rpc(JobService.method.getJobOutput, (req, ctx) =>
    edgeStream(getJobOutput(deps.getJob, deps.outputs, req, ctx.signal)),
  );
}
