import type { JobChange, JobEvents } from "../events/job-events.js";
import type { Logger } from "../log.js";

/**
 * One info line per thing that happens to a job, from the job bus: queued (created, retried or put
 * back after a failed attempt), offered to a worker, succeeded, failed, cancelled; each names the
 * job, its model and, where there is one, the worker, the attempt, the time since creation and the
 * error. Progress (RUNNING) changes are many and are not logged. It uses only what the change
 * carries (JobChange.job is the row as written): no query per event, and nothing is built for a
 * level that is off. Returns the unsubscribe function.
 */
export function logJobEvents(events: JobEvents, logger: Logger, now: () => number): () => void {
  const line = (change: JobChange): void => {
    if (change.status === "RUNNING" || !logger.isLevelEnabled("info")) return;
    const job = change.job;
    const base = { jobId: change.jobId, model: change.model };
    switch (change.status) {
      case "QUEUED":
        if (job && job.attempts > 0) logger.info({ ...base, attempts: job.attempts, error: job.error || undefined }, "job queued again");
        else logger.info(base, "job queued");
        return;
      case "OFFERED":
        logger.info({ ...base, worker: change.leaseWorker ?? undefined, attempt: job?.attempts }, "job offered");
        return;
      case "SUCCEEDED":
      case "FAILED":
      case "CANCELLED": {
        const ms = job ? Math.max(0, (job.finishedAt ?? now()) - job.createdAt) : undefined;
        const fields = { ...base, worker: change.leaseWorker ?? undefined, attempts: job?.attempts, ms };
        if (change.status === "SUCCEEDED") logger.info(fields, "job succeeded");
        else if (change.status === "FAILED") logger.info({ ...fields, error: job?.error || undefined }, "job failed");
        else logger.info(fields, "job cancelled");
        return;
      }
    }
  };
  // A listener that threw would stop the bus for every later listener: a log line never may.
  return events.subscribe((change) => {
    try {
      line(change);
    } catch {
      // Nothing sensible to do with a failure to log.
    }
  });
}
