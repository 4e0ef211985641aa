import { create } from "@bufbuild/protobuf";
import { WatchJobsResponseSchema, type WatchJobsRequest, type WatchJobsResponse } from "../../gen/studio/v1/job_service_pb.js";
import type { JobEvents } from "../events/job-events.js";
import { JobError } from "./job-errors.js";
import { jobFromRow, type JobRow } from "./job-row.js";
import { waitingJobOf, type JobWaits, type WaitingJob } from "./job-waits.js";
import { requireId, statusFilter } from "./job-requests.js";
import type { JobStore } from "./job-store.js";
import type { ListCursor } from "./list-cursor.js";
import { canFollow, joinDeltas, utf8Length } from "../../contract/text-delta.js";
import { JobStatus, type Job, type QueueWait, type TextDelta } from "../../gen/studio/v1/job_pb.js";
import type { TextFeed } from "../streams/text-feed.js";

/** Whether GetJob reads a job's streamed text: a text job that has not succeeded (a succeeded one's output holds it). */
export function hasStreamedText(job: Job): boolean {
  return job.task?.kind.case === "text" && job.status !== JobStatus.SUCCEEDED && job.status !== JobStatus.UNSPECIFIED;
}

/** Whether a snapshot reads a job's streamed text: a text job a worker holds now. */
const streamingNow = (job: Job) => job.task?.kind.case === "text" && (job.status === JobStatus.RUNNING || job.status === JobStatus.OFFERED);

export interface WatchOptions {
  store: JobStore;
  events: JobEvents;
  /** Streamed text, for include_text (a model lookup lets a watch filtered by model pick its jobs' pieces). */
  texts?: TextFeed & { modelOf(jobId: string): string | undefined };
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
 *
 * With include_text, text jobs' pieces come too, in order (consecutive pieces of one job are
 * joined while they wait): snapshot messages of jobs a worker holds carry the text so far, and
 * pieces the snapshot already holds are not sent again.
 */
export async function* watchJobs(
  req: WatchJobsRequest,
  signal: AbortSignal,
  { store, events, texts, maxPending = 10_000, snapshotPageSize = 500, waits, waitRecheckMs = 2000 }: WatchOptions,
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
  const deltas: TextDelta[] = [];
  /** What the snapshot sent of each job's text: pieces within it are not sent again. */
  const covered = new Map<string, { attempt: number; text: number; reasoning: number }>();
  const wantsHeld = statuses.length === 0 || statuses.includes("RUNNING") || statuses.includes("OFFERED");
  const unsubscribeText =
    req.includeText && texts && wantsHeld
      ? texts.subscribe(undefined, (d) => {
          if (ids.size > 0 && !ids.has(d.jobId)) return;
          if (req.model !== "" && texts.modelOf(d.jobId) !== req.model) return;
          const last = deltas.at(-1);
          if (last && canFollow(last, d)) deltas[deltas.length - 1] = joinDeltas(last, d);
          else if (deltas.length >= maxPending) overflow = true;
          else deltas.push(d);
          wake?.();
        })
      : () => {};
  /** A row as a snapshot sends it: a job a worker holds carries its text so far. */
  const snapshotJob = async (row: JobRow) => {
    const job = jobFromRow(row);
    if (req.includeText && texts && streamingNow(job)) {
      const text = await texts.read(job.id);
      if (text) {
        job.streamedText = text;
        covered.set(job.id, { attempt: text.attempt, text: utf8Length(text.text), reasoning: utf8Length(text.reasoning) });
      }
    }
    return job;
  };
  const alreadySent = (d: TextDelta) => {
    const c = covered.get(d.jobId);
    return c !== undefined && d.attempt === c.attempt && Number(d.textOffset) + utf8Length(d.text) <= c.text && Number(d.reasoningOffset) + utf8Length(d.reasoning) <= c.reasoning;
  };
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
          if (row && matches(row)) yield* await message([await snapshotJob(row)], true);
        }
      } else {
        let after: ListCursor | undefined;
        do {
          const page = await store.list({ statuses, model: req.model }, { pageSize: snapshotPageSize, after });
          const jobs: Job[] = [];
          for (const row of page.rows) jobs.push(await snapshotJob(row));
          yield* await message(jobs, true);
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
      // The pieces waiting now, then one change: neither can hold the other back for long.
      for (let n = deltas.length; n > 0 && deltas.length > 0 && !signal.aborted; n--) {
        const d = deltas.shift()!;
        if (!alreadySent(d)) yield create(WatchJobsResponseSchema, { textDelta: d });
      }
      const next = pending.values().next();
      if (next.done) {
        if (deltas.length > 0) continue;
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
    unsubscribeText();
    signal.removeEventListener("abort", onAbort);
  }
}
