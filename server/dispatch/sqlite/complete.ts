import { immediate, type StudioDb } from "../../db/open.js";
import type { JobRow } from "../../jobs/job-row.js";
import type { LeaseRef } from "../queue-store.js";
import { requireCurrentLease, selectJob, updateOne } from "./lease-sql.js";

/**
 * Commits a job's outputs: only under its current lease, and the conditional
 * UPDATE clears the lease in the same transaction, so a second complete (a
 * retry, a stale worker) finds no lease and changes nothing.
 */
export function complete(db: StudioDb, lease: LeaseRef, outputsJson: string, now: number): JobRow {
  return immediate(db, () => {
    requireCurrentLease(db, lease, now);
    updateOne(
      db,
      lease,
      `UPDATE graphicsJobs SET status = 'SUCCEEDED', outputs = ?, error = '', leaseId = NULL, leaseExpiresAt = NULL,
         updatedAt = ?, finishedAt = ?
       WHERE id = ? AND leaseId = ? AND status IN ('OFFERED','RUNNING')`,
      [outputsJson, now, now, lease.jobId, lease.leaseId],
    );
    return selectJob(db, lease.jobId)!;
  });
}
