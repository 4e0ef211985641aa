import { immediate, type StudioDb } from "../../db/open.js";
import type { JobRow } from "../../jobs/job-row.js";
import type { ExpiredLease } from "../queue-store.js";

/** Rescues stuck jobs: every lease past its expiry goes back to QUEUED, or FAILED once attempts are used up. */
export function expire(db: StudioDb, now: number): ExpiredLease[] {
  return immediate(db, () => {
    const stale = db.sqlite
      .query<JobRow, [number]>(
        `SELECT * FROM graphicsJobs WHERE status IN ('OFFERED','RUNNING') AND leaseExpiresAt <= ? ORDER BY leaseExpiresAt`,
      )
      .all(now);
    const out: ExpiredLease[] = [];
    for (const row of stale) {
      const worker = row.leaseWorker ?? "unknown";
      const giveUp = row.attempts >= row.maxAttempts;
      const updated = giveUp
        ? db.sqlite
            .query<JobRow, [string, number, number, string, string | null]>(
              `UPDATE graphicsJobs SET status = 'FAILED', error = ?, leaseId = NULL, leaseExpiresAt = NULL,
                 updatedAt = ?, finishedAt = ? WHERE id = ? AND leaseId = ? AND status IN ('OFFERED','RUNNING') RETURNING *`,
            )
            .get(
              `worker ${JSON.stringify(worker)} was lost: its lease expired without a heartbeat, ` +
                `and the job has used all ${row.maxAttempts} attempts`,
              now,
              now,
              row.id,
              row.leaseId,
            )
        : db.sqlite
            .query<JobRow, [string, number, string, string | null]>(
              `UPDATE graphicsJobs SET status = 'QUEUED', leaseId = NULL, leaseWorker = NULL, leaseExpiresAt = NULL,
                 progress = NULL, error = ?, updatedAt = ? WHERE id = ? AND leaseId = ? AND status IN ('OFFERED','RUNNING') RETURNING *`,
            )
            .get(`worker ${JSON.stringify(worker)} was lost (lease expired); queued again`, now, row.id, row.leaseId);
      if (updated) out.push({ row: updated, leaseId: row.leaseId!, leaseWorker: row.leaseWorker });
    }
    return out;
  });
}
