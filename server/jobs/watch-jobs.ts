import { create } from "@bufbuild/protobuf";
import { WatchJobsResponseSchema, type WatchJobsRequest, type WatchJobsResponse } from "../../gen/studio/v1/job_service_pb.js";
import type { JobEvents } from "../events/job-events.js";
import { JobError } from "./job-errors.js";
import { JobStatus, type Job, type QueueWait } from "../../gen/studio/v1/job_pb.js";
import { jobFromRow, type JobRow } from "./job-row.js";
import { waitingJobOf, type JobWaits, type WaitingJob } from "./job-waits.js";
import { requireId, statusFilter } from "./job-requests.js";
import type { JobStore } from "./job-store.js";
import type { ListCursor } from "./list-cursor.js";

export interface WatchOptions {
  store: JobStore;
  events: JobEvents;
  /** Distinct jobs with unsent changes a stream may hold before it is ended with watch_overflow. */
  maxPending?: number;
  snapshotPageSize?: number;
  /** Why queued jobs wait: each queued job sent carries it, and one whose wait changes is sent again. */
  waits?: JobWaits;
  /** How often the waits of the queued jobs a stream sent are looked at again. */
  waitRecheckMs?: number;
}

/** The most queued jobs one stream keeps an eye on for a changed wait (the newest it sent). */
export const MAX_WATCHED_WAITS = 500;

/** The most job ids one watch may name. */
export const MAX_WATCH_JOB_IDS = 1000;

/**
 * WatchJobs as an async generator: subscribes first, then (optionally) sends the
 * matching jobs as they are, then each change. Changes are coalesced per job and
 * sent as the job's latest row, so a slow reader sees every job's newest state
 * but may miss states a job passed through quickly. A reader further behind than
 * maxPending distinct jobs gets JobError("watch_overflow"). The subscription ends
 * when the signal aborts (the client went away) or the consumer stops.
 */
export async function* watchJobs(
  req: WatchJobsRequest,
  signal: AbortSignal,
  { store, events, maxPending = 10_000, snapshotPageSize = 500, waits, waitRecheckMs = 2000 }: WatchOptions,
): AsyncGenerator<WatchJobsResponse> {
  const statuses = statusFilter(req.statuses);
  if (req.jobIds.length > MAX_WATCH_JOB_IDS)
    throw new JobError("invalid_request", `job_ids: must name at most ${MAX_WATCH_JOB_IDS} jobs (got ${req.jobIds.length})`);
  req.jobIds.forEach((id, i) => requireId(id, `job_ids[${i}]`));
  const ids = new Set(req.jobIds);
  const matches = (row: JobRow) =>
    (statuses.length === 0 || statuses.includes(row.status as never)) &&
    (req.model === "" || row.model === req.model) &&
    (ids.size === 0 || ids.has(row.id));

  const pending = new Set<string>();
  let overflow = false;
  let wake: (() => void) | undefined;
  const unsubscribe = events.subscribe((change) => {
    if (req.model !== "" && change.model !== req.model) return;
    if (ids.size > 0 && !ids.has(change.jobId)) return;
    if (!pending.has(change.jobId)) {
      if (pending.size >= maxPending) overflow = true;
      else pending.add(change.jobId);
    }
    wake?.();
  });
  const onAbort = () => wake?.();
  signal.addEventListener("abort", onAbort);

  // The queued jobs this stream sent, with the wait it sent: a job whose wait changed (a worker
  // came or went, the line moved, its model was disabled) goes back into `pending` and is sent again.
  const sentWaits = new Map<string, { job: WaitingJob; said: string }>();
  const said = (w: QueueWait | undefined) => (w ? `${w.reason}|${w.message}` : "");
  let recheckDue = false;
  const recheck = waits
    ? setInterval(() => {
        if (sentWaits.size === 0) return;
        recheckDue = true;
        wake?.();
      }, waitRecheckMs)
    : undefined;
  /** The message for a job: its wait looked up when queued, and remembered for the re-check. */
  const message = async (jobs: Job[], snapshot: boolean) => {
    if (waits) {
      await waits.annotate(jobs);
      for (const job of jobs) {
        sentWaits.delete(job.id);
        if (job.status !== JobStatus.QUEUED) continue;
        if (sentWaits.size >= MAX_WATCHED_WAITS) sentWaits.delete(sentWaits.keys().next().value!);
        sentWaits.set(job.id, { job: waitingJobOf(job), said: said(job.waiting) });
      }
    }
    return jobs.map((job) => create(WatchJobsResponseSchema, { job, snapshot }));
  };
  try {
    if (req.includeSnapshot) {
      if (ids.size > 0) {
        for (const id of ids) {
          const row = await store.get(id);
          if (row && matches(row)) yield* await message([jobFromRow(row)], true);
        }
      } else {
        let after: ListCursor | undefined;
        do {
          const page = await store.list({ statuses, model: req.model }, { pageSize: snapshotPageSize, after });
          yield* await message(page.rows.map((row) => jobFromRow(row)), true);
          after = page.next;
        } while (after && !signal.aborted);
      }
    }
    while (!signal.aborted) {
      if (overflow)
        throw new JobError("watch_overflow", `watch fell more than ${maxPending} jobs behind; watch again with include_snapshot`);
      if (recheckDue && waits) {
        recheckDue = false;
        for (const [id, sent] of sentWaits) if (said(await waits.explain(sent.job)) !== sent.said) pending.add(id);
      }
      const next = pending.values().next();
      if (next.done) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      pending.delete(next.value);
      const row = await store.get(next.value);
      if (row && matches(row)) yield* await message([jobFromRow(row)], false);
      else sentWaits.delete(next.value);
    }
  } finally {
    clearInterval(recheck);
    unsubscribe();
    signal.removeEventListener("abort", onAbort);
  }
}
