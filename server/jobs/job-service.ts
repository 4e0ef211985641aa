import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import {
  CancelJobResponseSchema,
  CreateJobResponseSchema,
  GetJobResponseSchema,
  ListJobsResponseSchema,
  PromoteJobResponseSchema,
  RetryJobResponseSchema,
  type CancelJobRequest,
  type CreateJobRequest,
  type CreateJobsRequest,
  type GetJobRequest,
  type ListJobsRequest,
  type PromoteJobRequest,
  type RetryJobRequest,
  type WatchJobsRequest,
} from "../../gen/studio/v1/job_service_pb.js";
import type { Job } from "../../gen/studio/v1/job_pb.js";
import type { JobEvents } from "../events/job-events.js";
import type { JobWaits } from "./job-waits.js";
import { formatIssues } from "../../contract/issues.js";
import { CreateBatcher } from "./create-batcher.js";
import { createJobsStream } from "./create-jobs-stream.js";
import { JobError, jobNotFound } from "./job-errors.js";
import { jobFromRow, rememberCreatedTask } from "./job-row.js";
import { modelIssues, newJobFromRequest, promotedPriority, requireId, statusFilter } from "./job-requests.js";
import { atJobEdge, jobConnectError } from "./job-rpc-errors.js";
import type { JobStore } from "./job-store.js";
import { decodeCursor, encodeCursor } from "./list-cursor.js";
import { hasStreamedText, watchJobs } from "./watch-jobs.js";
import type { TextFeed } from "../streams/text-feed.js";

/** ListJobs' page size when the request says 0, and the most it may ask for (larger asks are clamped). */
export const LIST_PAGE_SIZE = { default: 50, max: 500 } as const;

export interface JobServiceDeps {
  store: JobStore;
  events: JobEvents;
  defaultMaxAttempts: number;
  /** WatchJobs' per-stream buffer, in distinct jobs. */
  watchMaxPending?: number;
  /** Aborts when the studio stops: open watches end cleanly instead of holding shutdown for its grace period. */
  shutdown?: AbortSignal;
  /** Why queued jobs wait: every Job returned carries it (Job.waiting). Without it, jobs are returned as stored. */
  waits?: JobWaits;
  /** Text jobs' streamed output (GetJob's streamed_text, WatchJobs' include_text); absent: neither is filled. */
  texts?: JobTexts;
}

/** What JobService reads of streamed text (server/streams TextStreams). */
export type JobTexts = TextFeed & { modelOf(jobId: string): string | undefined };

/**
 * JobService without GetJobOutput (dispatch registers that one with router.rpc):
 * the handlers validate, call the store, and map domain errors at the edge. Creates
 * that arrive together are committed together (CreateBatcher).
 */
export function createJobService({ store, events, defaultMaxAttempts, watchMaxPending, shutdown, waits, texts }: JobServiceDeps) {
  const creates = new CreateBatcher(store);
  /** The job, with its wait when it is queued. */
  const explained = async (job: Job, fresh = true) => {
    await waits?.annotate([job], { fresh });
    return job;
  };
  /** CreateJob's write without the RPC around it (the OpenAI API queues its jobs here); throws JobError. */
  const createRow = async (req: CreateJobRequest) => {
    const input = newJobFromRequest(req, { defaultMaxAttempts });
    const result = await creates.create(input);
    if (result.created) rememberCreatedTask(result.row.id, input.task);
    return { input, ...result };
  };
  return {
    createRow,
    createJob: (req: CreateJobRequest) =>
      atJobEdge(async () => {
        const { input, row, created } = await createRow(req);
        // A new row stores input.task as written: no need to parse it back (an existing one may differ).
        return create(CreateJobResponseSchema, { job: await explained(jobFromRow(row, created ? { task: input.task } : undefined), false), created });
      }),

    createJobs: (requests: AsyncIterable<CreateJobsRequest>) =>
      createJobsStream(requests, async (req) => {
        const { input, row, created } = await createRow(req);
        return create(CreateJobResponseSchema, { job: await explained(jobFromRow(row, created ? { task: input.task } : undefined), false), created });
      }),

    promoteJob: (req: PromoteJobRequest) =>
      atJobEdge(async () => {
        requireId(req.jobId, "job_id");
        const issues = modelIssues(req.model);
        if (issues.length) throw new JobError("invalid_request", formatIssues(issues));
        const original = await store.get(req.jobId);
        if (!original) throw jobNotFound(req.jobId);
        const row = await store.promote(req.jobId, req.model, promotedPriority(original.priority));
        return create(PromoteJobResponseSchema, { job: await explained(jobFromRow(row)) });
      }),

    retryJob: (req: RetryJobRequest) =>
      atJobEdge(async () => {
        requireId(req.jobId, "job_id");
        return create(RetryJobResponseSchema, { job: await explained(jobFromRow(await store.retry(req.jobId))) });
      }),

    cancelJob: (req: CancelJobRequest) =>
      atJobEdge(async () => {
        requireId(req.jobId, "job_id");
        return create(CancelJobResponseSchema, { job: jobFromRow((await store.cancel(req.jobId)).row) });
      }),

    getJob: (req: GetJobRequest) =>
      atJobEdge(async () => {
        requireId(req.jobId, "job_id");
        const row = await store.get(req.jobId);
        if (!row) throw jobNotFound(req.jobId);
        const job = jobFromRow(row);
        if (texts && hasStreamedText(job)) job.streamedText = await texts.read(job.id);
        return create(GetJobResponseSchema, { job: await explained(job) });
      }),

    listJobs: (req: ListJobsRequest) =>
      atJobEdge(async () => {
        const statuses = statusFilter(req.statuses);
        if (req.model !== "") {
          const issues = modelIssues(req.model);
          if (issues.length) throw new JobError("invalid_request", formatIssues(issues));
        }
        const pageSize = Math.min(req.pageSize || LIST_PAGE_SIZE.default, LIST_PAGE_SIZE.max);
        const after = req.pageToken === "" ? undefined : decodeCursor(req.pageToken);
        const page = await store.list({ statuses, model: req.model }, { pageSize, after });
        const jobs = page.rows.map((row) => jobFromRow(row));
        await waits?.annotate(jobs);
        return create(ListJobsResponseSchema, { jobs, nextPageToken: page.next ? encodeCursor(page.next) : "" });
      }),

    async *watchJobs(req: WatchJobsRequest, ctx: HandlerContext) {
      try {
        const signal = shutdown ? AbortSignal.any([ctx.signal, shutdown]) : ctx.signal;
        yield* watchJobs(req, signal, { store, events, maxPending: watchMaxPending, waits, texts });
      } catch (err) {
        throw jobConnectError(err);
      }
    },
  };
}
