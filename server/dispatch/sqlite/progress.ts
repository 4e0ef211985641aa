import type { StudioDb } from "../../db/open.js";
import type { JobRow } from "../../jobs/job-row.js";
import type { LeaseRef } from "../queue-store.js";
import { updateUnderLease } from "./lease-sql.js";

/** Stores a job's latest progress; the first progress of an OFFERED job means the worker started it. */
export function saveProgress(db: StudioDb, lease: LeaseRef, progressJson: string, now: number): JobRow {
  return updateUnderLease(db, lease, now, `status = 'RUNNING', progress = ?, updatedAt = ?`, [progressJson, now]);
}
