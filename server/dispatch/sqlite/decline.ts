import { immediate, type StudioDb } from "../../db/open.js";
import type { JobRow } from "../../jobs/job-row.js";
import type { LeaseRef } from "../queue-store.js";
import { requireCurrentLease, selectJob, updateOne } from "./lease-sql.js";

/**
 * A worker hands an offer back (engine missing, disk full): the job returns to
 * QUEUED and the attempt the offer counted is given back.
 */
export function decline(db: StudioDb, lease: LeaseRef, now: number): JobRow {
  return immediate(db, () => {
    requireCurrentLease(db, lease, now);
    updateOne(
      db,
      lease,
      `UPDATE graphicsJobs SET status = 'QUEUED', leaseId = NULL, leaseWorker = NULL, leaseExpiresAt = NULL,
         attempts = MAX(attempts - 1, 0), progress = NULL, updatedAt = ?
       WHERE id = ? AND leaseId = ? AND status IN ('OFFERED','RUNNING')`,
      [now, lease.jobId, lease.leaseId],
    );
    return selectJob(db, lease.jobId)!;
  });
}
