import { immediate, type StudioDb } from "../../db/open.js";
import type { JobRow } from "../../jobs/job-row.js";
import type { LeaseRef } from "../queue-store.js";
import { requireCurrentLease, updateOne } from "./lease-sql.js";

/** Longest error text stored on a job. */
export const MAX_ERROR_CHARS = 4000;

/**
 * A worker's failure under its current lease: retryable with attempts left puts
 * the job back in the queue (the error kept for operators), otherwise it is FAILED.
 */
export function fail(db: StudioDb, lease: LeaseRef, error: string, retryable: boolean, now: number): JobRow {
  const text = (error.trim() || "the worker reported a failure without a message").slice(0, MAX_ERROR_CHARS);
  return immediate(db, () => {
    const row = requireCurrentLease(db, lease, now);
    const requeue = retryable && row.attempts < row.maxAttempts;
    return updateOne(
      db,
      lease,
      requeue
        ? `UPDATE graphicsJobs SET status = 'QUEUED', error = ?, leaseId = NULL, leaseWorker = NULL, leaseExpiresAt = NULL,
             progress = NULL, updatedAt = ? WHERE id = ? AND leaseId = ? AND status IN ('OFFERED','RUNNING') RETURNING *`
        : `UPDATE graphicsJobs SET status = 'FAILED', error = ?, leaseId = NULL, leaseExpiresAt = NULL,
             updatedAt = ?, finishedAt = ? WHERE id = ? AND leaseId = ? AND status IN ('OFFERED','RUNNING') RETURNING *`,
      requeue ? [text, now, lease.jobId, lease.leaseId] : [text, now, now, lease.jobId, lease.leaseId],
    );
  });
}
