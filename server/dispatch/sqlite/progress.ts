import { immediate, type StudioDb } from "../../db/open.js";
import type { JobRow } from "../../jobs/job-row.js";
import type { LeaseRef } from "../queue-store.js";
import { requireCurrentLease, selectJob, updateOne } from "./lease-sql.js";

/** Stores a job's latest progress; the first progress of an OFFERED job means the worker started it. */
export function saveProgress(db: StudioDb, lease: LeaseRef, progressJson: string, now: number): JobRow {
  return immediate(db, () => {
    requireCurrentLease(db, lease, now);
    updateOne(
      db,
      lease,
      `UPDATE graphicsJobs SET status = 'RUNNING', progress = ?, updatedAt = ?
       WHERE id = ? AND leaseId = ? AND status IN ('OFFERED','RUNNING')`,
      [progressJson, now, lease.jobId, lease.leaseId],
    );
    return selectJob(db, lease.jobId)!;
  });
}
