import { immediate, type StudioDb } from "../../db/open.js";
import type { JobRow } from "../../jobs/job-row.js";
import type { RenewResult } from "../queue-store.js";

function leasedRow(db: StudioDb, leaseId: string, now: number, holder?: string): JobRow | undefined {
  const row = db.sqlite
    .query<JobRow, [string, number]>(
      `SELECT * FROM graphicsJobs WHERE leaseId = ? AND status IN ('OFFERED','RUNNING') AND leaseExpiresAt > ?`,
    )
    .get(leaseId, now);
  if (!row || (holder !== undefined && row.leaseWorker !== holder)) return undefined;
  return row;
}

/** Heartbeat: extends every listed lease that is still current (and held by `holder` when given). */
export function renew(db: StudioDb, leaseIds: readonly string[], now: number, ttlMs: number, holder?: string): RenewResult {
  const expiresAt = now + ttlMs;
  return immediate(db, () => {
    const renewed: string[] = [];
    const lost: string[] = [];
    for (const leaseId of new Set(leaseIds)) {
      const row = leasedRow(db, leaseId, now, holder);
      const changed =
        row &&
        db.sqlite
          .query(`UPDATE graphicsJobs SET leaseExpiresAt = ? WHERE id = ? AND leaseId = ? AND status IN ('OFFERED','RUNNING')`)
          .run(expiresAt, row.id, leaseId).changes === 1;
      (changed ? renewed : lost).push(leaseId);
    }
    return { renewed, lost, expiresAt };
  });
}

/** Reconnect: the listed current leases are renewed and recorded under the worker's (new) holder name. */
export function keep(
  db: StudioDb,
  leaseIds: readonly string[],
  holder: string,
  now: number,
  ttlMs: number,
): { kept: JobRow[]; lost: string[] } {
  return immediate(db, () => {
    const kept: JobRow[] = [];
    const lost: string[] = [];
    for (const leaseId of new Set(leaseIds)) {
      const row = leasedRow(db, leaseId, now);
      if (!row) {
        lost.push(leaseId);
        continue;
      }
      const updated = db.sqlite
        .query<JobRow, [number, string, number, string, string]>(
          `UPDATE graphicsJobs SET leaseExpiresAt = ?, leaseWorker = ?, updatedAt = ? WHERE id = ? AND leaseId = ? RETURNING *`,
        )
        .get(now + ttlMs, holder, now, row.id, leaseId);
      if (updated) kept.push(updated);
      else lost.push(leaseId);
    }
    return { kept, lost };
  });
}
