import { randomBytes } from "node:crypto";
import type { StudioDb } from "../../db/open.js";
import type { JobRow } from "../../jobs/job-row.js";
import type { ClaimFilter, QueuedJob } from "../queue-store.js";

/** A fresh lease id: 128 random bits, the fencing token every later message must carry. */
export function newLeaseId(): string {
  return randomBytes(16).toString("hex");
}

const MATCH = `status = 'QUEUED'
  AND (engine IS NULL OR engine IN (SELECT value FROM json_each(?)))
  AND id NOT IN (SELECT value FROM json_each(?))`;
/** Added to MATCH when some models are disabled: their queued jobs are held. Separate statements, so the usual claim is unchanged. */
const HELD = ` AND model NOT IN (SELECT value FROM json_each(?))`;
/** Added to MATCH for a worker with GPUs: only jobs one of them can hold now. */
const VRAM_BOUND = ` AND (vramBytes IS NULL OR vramBytes <= ?)`;

/** The queue head in claim order, for placement. */
export function peekQueued(db: StudioDb, limit: number): QueuedJob[] {
  return db.sqlite
    .query<QueuedJob, [number]>(
      `SELECT id, model, engine, modelSource, vramBytes FROM graphicsJobs WHERE status = 'QUEUED'
       ORDER BY priority DESC, createdAt ASC LIMIT ?`,
    )
    .all(limit);
}

/**
 * commitOffer: in one statement, takes the next QUEUED job the filter allows
 * (priority DESC, createdAt ASC; rows without an engine, legacy ones, go to
 * anyone) and moves it to OFFERED with a fresh lease, counting the attempt, and
 * returns the row. The UPDATE is conditional on QUEUED, and one statement is
 * atomic, so one job is never on offer twice.
 */
export function claim(db: StudioDb, filter: ClaimFilter, now: number, ttlMs: number): JobRow | undefined {
  const engines = JSON.stringify(filter.engines);
  const exclude = JSON.stringify(filter.excludeJobIds ?? []);
  const held = filter.excludeModels?.length ? JSON.stringify(filter.excludeModels) : undefined;
  const bounded = filter.maxVramBytes !== undefined;
  const match = MATCH + (held === undefined ? "" : HELD) + (bounded ? VRAM_BOUND : "");
  const matchArgs: (string | number)[] = [engines, exclude];
  if (held !== undefined) matchArgs.push(held);
  if (bounded) matchArgs.push(filter.maxVramBytes!);
  const set = `UPDATE graphicsJobs SET status = 'OFFERED', leaseId = ?, leaseWorker = ?, leaseExpiresAt = ?,
      attempts = attempts + 1, updatedAt = ?`;
  const lease = [newLeaseId(), filter.workerName, now + ttlMs, now] as const;
  const row =
    filter.jobId === undefined
      ? db.sqlite
          .query<JobRow, (string | number)[]>(
            `${set} WHERE id = (SELECT id FROM graphicsJobs WHERE ${match} ORDER BY priority DESC, createdAt ASC LIMIT 1)
               AND status = 'QUEUED' RETURNING *`,
          )
          .get(...lease, ...matchArgs)
      : db.sqlite
          .query<JobRow, (string | number)[]>(`${set} WHERE ${match} AND id = ? RETURNING *`)
          .get(...lease, ...matchArgs, filter.jobId);
  return row ?? undefined;
}
