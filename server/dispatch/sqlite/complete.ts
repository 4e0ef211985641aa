import type { StudioDb } from "../../db/open.js";
import type { JobRow } from "../../jobs/job-row.js";
import type { LeaseRef } from "../queue-store.js";
import { updateUnderLease } from "./lease-sql.js";

/**
 * Commits a job's outputs: only under its current lease, and the conditional
 * UPDATE clears the lease in the same statement, so a second complete (a
 * retry, a stale worker) finds no lease and changes nothing.
 */
export function complete(db: StudioDb, lease: LeaseRef, outputsJson: string, now: number): JobRow {
  return updateUnderLease(
    db,
    lease,
    now,
    `status = 'SUCCEEDED', outputs = ?, error = '', leaseId = NULL, leaseExpiresAt = NULL, updatedAt = ?, finishedAt = ?`,
    [outputsJson, now, now],
  );
}
