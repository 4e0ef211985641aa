import type { StudioDb } from "../../db/open.js";
import type { JobRow } from "../../jobs/job-row.js";
import { LeaseLostError } from "../dispatch-error.js";
import type { LeaseRef } from "../queue-store.js";

/** The statuses in which a job holds a lease. */
export const LEASED = "status IN ('OFFERED','RUNNING')";

/** Reads one job row. */
export function selectJob(db: StudioDb, jobId: string): JobRow | undefined {
  return db.sqlite.query<JobRow, [string]>(`SELECT * FROM graphicsJobs WHERE id = ?`).get(jobId) ?? undefined;
}

/**
 * The row when `lease` is the job's current lease (leased status, same id, not
 * expired), else LeaseLostError saying why. Call inside the operation's transaction.
 */
export function requireCurrentLease(db: StudioDb, lease: LeaseRef, now: number): JobRow {
  const row = selectJob(db, lease.jobId);
  if (!row) throw new LeaseLostError(lease.jobId, lease.leaseId, "no such job");
  if (row.leaseId !== lease.leaseId)
    throw new LeaseLostError(lease.jobId, lease.leaseId, row.leaseId ? "the job has another lease" : `the job is ${row.status}`);
  if (row.status !== "OFFERED" && row.status !== "RUNNING")
    throw new LeaseLostError(lease.jobId, lease.leaseId, `the job is ${row.status}`);
  if ((row.leaseExpiresAt ?? 0) <= now) throw new LeaseLostError(lease.jobId, lease.leaseId, "the lease expired");
  return row;
}

/**
 * Runs a conditional UPDATE ending in RETURNING * and insists that it changed exactly
 * one row (the fencing check); returns that row, so nothing reads it again.
 */
export function updateOne(db: StudioDb, lease: LeaseRef, sql: string, params: (string | number | null)[]): JobRow {
  const rows = db.sqlite.query<JobRow, (string | number | null)[]>(sql).all(...params);
  if (rows.length !== 1) throw new LeaseLostError(lease.jobId, lease.leaseId, "the job changed under the update");
  return rows[0]!;
}

/**
 * A change under a current lease in one statement: the UPDATE applies only while the
 * job holds `lease` in a leased status and the lease has not expired (the fencing
 * check), and returns the new row. When nothing matched, requireCurrentLease says why.
 * One statement is atomic on its own, so the hot paths need no explicit transaction.
 */
export function updateUnderLease(
  db: StudioDb,
  lease: LeaseRef,
  now: number,
  set: string,
  params: (string | number | null)[],
): JobRow {
  const row = db.sqlite
    .query<JobRow, (string | number | null)[]>(
      `UPDATE graphicsJobs SET ${set} WHERE id = ? AND leaseId = ? AND ${LEASED} AND leaseExpiresAt > ? RETURNING *`,
    )
    .get(...params, lease.jobId, lease.leaseId, now);
  if (row) return row;
  requireCurrentLease(db, lease, now);
  throw new LeaseLostError(lease.jobId, lease.leaseId, "the job changed under the update");
}
