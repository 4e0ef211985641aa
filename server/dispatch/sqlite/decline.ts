import type { StudioDb } from "../../db/open.js";
import type { JobRow } from "../../jobs/job-row.js";
import type { LeaseRef } from "../queue-store.js";
import { updateUnderLease } from "./lease-sql.js";

/**
 * A worker hands an offer back (engine missing, disk full): the job returns to
 * QUEUED and the attempt the offer counted is given back.
 */
export function decline(db: StudioDb, lease: LeaseRef, now: number): JobRow {
  return updateUnderLease(
    db,
    lease,
    now,
    `status = 'QUEUED', leaseId = NULL, leaseWorker = NULL, leaseExpiresAt = NULL,
     attempts = MAX(attempts - 1, 0), progress = NULL, updatedAt = ?`,
    [now],
  );
}
