import { immediate, type StudioDb } from "../../db/open.js";
import type { JobRow } from "../../jobs/job-row.js";
import type { LeaseRef } from "../queue-store.js";
import { requireCurrentLease, selectJob, updateOne } from "./lease-sql.js";

/** OFFERED → RUNNING on an explicit accept, renewing the lease; a RUNNING job just renews. */
export function accept(db: StudioDb, lease: LeaseRef, now: number, ttlMs: number): JobRow {
  return immediate(db, () => {
    requireCurrentLease(db, lease, now);
    updateOne(
      db,
      lease,
      `UPDATE graphicsJobs SET status = 'RUNNING', leaseExpiresAt = ?, updatedAt = ?
       WHERE id = ? AND leaseId = ? AND status IN ('OFFERED','RUNNING')`,
      [now + ttlMs, now, lease.jobId, lease.leaseId],
    );
    return selectJob(db, lease.jobId)!;
  });
}
