import type { TextDelta } from "../../gen/studio/v1/job_pb.js";
import type { JobChange, JobEvents } from "../events/job-events.js";
import { TERMINAL_STATUSES, type JobRow } from "../jobs/job-row.js";
import type { TextFeed } from "../streams/text-feed.js";

/** What following a job needs. */
export interface FollowDeps {
  events: JobEvents;
  getJob(id: string): Promise<JobRow | undefined>;
  /** Streamed text pieces; without it, text arrives with the job's end only. */
  texts?: TextFeed;
  /** How long the job may sit in the queue (at first, and after a retry put it back) before `unclaimed`. */
  waitMs: number;
}

/** What a follower reports, in the order things happened. */
export interface FollowHandlers {
  /** A worker took the job (OFFERED or RUNNING); again after each requeue. */
  taken?(): void;
  /** The job went back to the queue after a worker had it (a retryable failure, a lost lease). */
  requeued?(): void;
  /** A piece of the job's text (text jobs, when the feed is there). */
  delta?(delta: TextDelta): void;
  /** The job ended (SUCCEEDED, FAILED or CANCELLED): its row as stored. */
  ended(row: JobRow): void;
  /** The job sat in the queue for waitMs with no worker taking it. */
  unclaimed(waitedMs: number): void;
  /** Reading the job failed (the database went away). */
  failed(err: unknown): void;
}

const TAKEN = new Set(["OFFERED", "RUNNING"]);
const TERMINAL = new Set<string>(TERMINAL_STATUSES);

/**
 * Follows one job for a caller waiting on it (an OpenAI API request): its status changes from the
 * job bus (other replicas' changes included), its text pieces, and a deadline for some worker to
 * take it. Subscribes before reading the row, so no change between create and follow is missed.
 * stop() ends it; nothing is reported after stop or after `ended`.
 */
export function followJob(jobId: string, deps: FollowDeps, handlers: FollowHandlers): { stop(): void } {
  let state: "new" | "queued" | "taken" | "ended" = "new";
  let stopped = false;
  let sawEvent = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const stopTimer = () => {
    clearTimeout(timer);
    timer = undefined;
  };
  const startTimer = () => {
    stopTimer();
    timer = setTimeout(() => {
      timer = undefined;
      if (!stopped && state === "queued") handlers.unclaimed(deps.waitMs);
    }, deps.waitMs);
  };
  const end = (row?: JobRow) => {
    if (state === "ended") return;
    state = "ended";
    stopTimer();
    const read = row ? Promise.resolve(row) : deps.getJob(jobId);
    read.then(
      (r) => {
        if (stopped) return;
        if (r) handlers.ended(r);
        else handlers.failed(new Error(`job ${jobId} is gone`));
      },
      (err) => !stopped && handlers.failed(err),
    );
  };
  const onStatus = (status: string, row?: JobRow) => {
    if (stopped || state === "ended") return;
    if (TERMINAL.has(status)) return end(row);
    if (TAKEN.has(status)) {
      if (state === "taken") return;
      state = "taken";
      stopTimer();
      handlers.taken?.();
      return;
    }
    if (status === "QUEUED" && state !== "queued") {
      const wasTaken = state === "taken";
      state = "queued";
      startTimer();
      if (wasTaken) handlers.requeued?.();
    }
  };

  const unsubscribe = deps.events.subscribe((change: JobChange) => {
    if (change.jobId !== jobId) return;
    sawEvent = true;
    onStatus(change.status);
  });
  const unsubscribeText = deps.texts?.subscribe(jobId, (delta) => {
    if (!stopped && state !== "ended") handlers.delta?.(delta);
  });
  deps.getJob(jobId).then(
    (row) => {
      if (stopped || sawEvent) return;
      if (!row) return handlers.failed(new Error(`job ${jobId} is gone`));
      onStatus(row.status, row);
    },
    (err) => !stopped && handlers.failed(err),
  );

  return {
    stop() {
      if (stopped) return;
      stopped = true;
      stopTimer();
      unsubscribe();
      unsubscribeText?.();
    },
  };
}
