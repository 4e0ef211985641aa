import type { StudioDb } from "../../db/open.js";
import type { JobRow } from "../../jobs/job-row.js";
import type { LeaseRef } from "../queue-store.js";
import { updateUnderLease } from "./lease-sql.js";

/** OFFERED → RUNNING on an explicit accept, renewing the lease; a RUNNING job just renews. */
export function accept(db: StudioDb, lease: LeaseRef, now: number, ttlMs: number): JobRow {
  return updateUnderLease(db, lease, now, `status = 'RUNNING', leaseExpiresAt = ?, updatedAt = ?`, [now + ttlMs, now]);
}
