import { immediate, type StudioDb } from "../../db/open.js";
import type { JobRow } from "../../jobs/job-row.js";
import type { ExpiredLease } from "../queue-store.js";
import { selectJob } from "./lease-sql.js";

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
      const changes = giveUp
        ? db.sqlite
            .query(
              `UPDATE graphicsJobs SET status = 'FAILED', error = ?, leaseId = NULL, leaseExpiresAt = NULL,
                 updatedAt = ?, finishedAt = ? WHERE id = ? AND leaseId = ? AND status IN ('OFFERED','RUNNING')`,
            )
            .run(
              `worker ${JSON.stringify(worker)} was lost: its lease expired without a heartbeat, ` +
                `and the job has used all ${row.maxAttempts} attempts`,
              now,
              now,
              row.id,
              row.leaseId,
            ).changes
        : db.sqlite
            .query(
              `UPDATE graphicsJobs SET status = 'QUEUED', leaseId = NULL, leaseWorker = NULL, leaseExpiresAt = NULL,
                 progress = NULL, error = ?, updatedAt = ? WHERE id = ? AND leaseId = ? AND status IN ('OFFERED','RUNNING')`,
            )
            .run(`worker ${JSON.stringify(worker)} was lost (lease expired); queued again`, now, row.id, row.leaseId).changes;
      if (changes === 1) out.push({ row: selectJob(db, row.id)!, leaseId: row.leaseId!, leaseWorker: row.leaseWorker });
    }
    return out;
  });
}
