import { randomBytes } from "node:crypto";
import { immediate, type StudioDb } from "../../db/open.js";
import type { JobRow } from "../../jobs/job-row.js";
import type { ClaimFilter, QueuedJob } from "../queue-store.js";
import { selectJob } from "./lease-sql.js";

/** A fresh lease id: 128 random bits, the fencing token every later message must carry. */
export function newLeaseId(): string {
  return randomBytes(16).toString("hex");
}

const MATCH = `status = 'QUEUED'
  AND (engine IS NULL OR engine IN (SELECT value FROM json_each(?)))
  AND id NOT IN (SELECT value FROM json_each(?))`;

/** The queue head in claim order, for placement. */
export function peekQueued(db: StudioDb, limit: number): QueuedJob[] {
  return db.sqlite
    .query<QueuedJob, [number]>(
      `SELECT id, engine, modelSource FROM graphicsJobs WHERE status = 'QUEUED'
       ORDER BY priority DESC, createdAt ASC LIMIT ?`,
    )
    .all(limit);
}

/**
 * commitOffer: in one immediate transaction, takes the next QUEUED job the filter
 * allows (priority DESC, createdAt ASC; rows without an engine, legacy ones, go
 * to anyone) and moves it to OFFERED with a fresh lease, counting the attempt.
 * The UPDATE is conditional on QUEUED and must change one row, so one job is
 * never on offer twice.
 */
export function claim(db: StudioDb, filter: ClaimFilter, now: number, ttlMs: number): JobRow | undefined {
  return immediate(db, () => {
    const engines = JSON.stringify(filter.engines);
    const exclude = JSON.stringify(filter.excludeJobIds ?? []);
    const pick =
      filter.jobId === undefined
        ? db.sqlite
            .query<{ id: string }, [string, string]>(
              `SELECT id FROM graphicsJobs WHERE ${MATCH} ORDER BY priority DESC, createdAt ASC LIMIT 1`,
            )
            .get(engines, exclude)
        : db.sqlite
            .query<{ id: string }, [string, string, string]>(`SELECT id FROM graphicsJobs WHERE ${MATCH} AND id = ?`)
            .get(engines, exclude, filter.jobId);
    if (!pick) return undefined;
    const leaseId = newLeaseId();
    const changed = db.sqlite
      .query(
        `UPDATE graphicsJobs SET status = 'OFFERED', leaseId = ?, leaseWorker = ?, leaseExpiresAt = ?,
           attempts = attempts + 1, updatedAt = ? WHERE id = ? AND status = 'QUEUED'`,
      )
      .run(leaseId, filter.workerName, now + ttlMs, now, pick.id).changes;
    if (changed !== 1) return undefined;
    return selectJob(db, pick.id);
  });
}
