import { sql, type SQL } from "drizzle-orm";
import { jobRowOf } from "../../db/pg/rows.js";
import type { PgQuery } from "../../db/pg/pg-db.js";
import type { JobRow } from "../../jobs/job-row.js";
import { LeaseLostError } from "../dispatch-error.js";
import type { LeaseRef } from "../queue-store.js";

/** The condition every change under a lease carries: the job holds this lease, in a leased status, unexpired (the fencing). */
export function underLease(lease: LeaseRef, now: number): SQL {
  return sql`"id" = ${lease.jobId} AND "leaseId" = ${lease.leaseId} AND "status" IN ('OFFERED','RUNNING') AND "leaseExpiresAt" > ${now}`;
}

export async function selectJob(q: PgQuery, jobId: string): Promise<JobRow | undefined> {
  const [row] = await q.rows(sql`SELECT * FROM "graphicsJobs" WHERE "id" = ${jobId}`);
  return row ? jobRowOf(row) : undefined;
}

/** The row when `lease` is the job's current lease, else LeaseLostError saying why (the same reasons as on SQLite). */
export async function requireCurrentLease(q: PgQuery, lease: LeaseRef, now: number): Promise<JobRow> {
  const row = await selectJob(q, lease.jobId);
  if (!row) throw new LeaseLostError(lease.jobId, lease.leaseId, "no such job");
  if (row.leaseId !== lease.leaseId)
    throw new LeaseLostError(lease.jobId, lease.leaseId, row.leaseId ? "the job has another lease" : `the job is ${row.status}`);
  if (row.status !== "OFFERED" && row.status !== "RUNNING") throw new LeaseLostError(lease.jobId, lease.leaseId, `the job is ${row.status}`);
  if ((row.leaseExpiresAt ?? 0) <= now) throw new LeaseLostError(lease.jobId, lease.leaseId, "the lease expired");
  return row;
}

/**
 * One conditional UPDATE under the current lease, returning the new row; when nothing
 * matched, requireCurrentLease says why. One statement is atomic, so no transaction.
 */
export async function updateUnderLease(q: PgQuery, lease: LeaseRef, now: number, set: SQL): Promise<JobRow> {
  const [row] = await q.rows(sql`UPDATE "graphicsJobs" SET ${set} WHERE ${underLease(lease, now)} RETURNING *`);
  if (row) return jobRowOf(row);
  await requireCurrentLease(q, lease, now);
  throw new LeaseLostError(lease.jobId, lease.leaseId, "the job changed under the update");
}
