import { sql } from "drizzle-orm";
import type { PgDb, PgQuery } from "../../db/pg/pg-db.js";
import { jobRowOf, num, numOrNull } from "../../db/pg/rows.js";
import type { JobRow } from "../../jobs/job-row.js";
import { newLeaseId } from "../sqlite/claim.js";
import { MAX_ERROR_CHARS } from "../sqlite/fail.js";
import type { ClaimFilter, ExpiredLease, LeaseRef, QueuedJob, QueueStore, RenewResult } from "../queue-store.js";
import { lostAndQueuedAgain, lostForGood } from "../lease-messages.js";
import { requireCurrentLease, selectJob, updateUnderLease } from "./pg-lease-sql.js";

/** Most expired leases one reaper pass takes back; the rest wait for the next pass. */
const EXPIRE_BATCH = 500;

/**
 * The QueueStore on PostgreSQL, shared by every replica. Each operation is one
 * conditional statement (or one short transaction) whose WHERE names the status and
 * lease it expects, so two replicas, a late message or two reapers can never both
 * win: claims skip rows another claim has locked (FOR UPDATE SKIP LOCKED) and a claim
 * of a chosen job re-checks QUEUED after waiting for the row; renew, keep and expire
 * change many leases in one statement each. The trigger from migration 0002 tells the
 * other replicas about every change (server/storage/pg-notifications.ts).
 */
export function createPgQueueStore(db: PgDb): QueueStore {
  return {
    async peekQueued(limit) {
      const rows = await db.rows<Record<string, unknown>>(
        sql`SELECT "id", "model", "engine", "modelSource", "vramBytes" FROM "graphicsJobs" WHERE "status" = 'QUEUED'
            ORDER BY "priority" DESC NULLS LAST, "createdAt" ASC LIMIT ${limit}`,
      );
      return rows.map((r) => ({
        id: r.id as string,
        model: r.model as string,
        engine: (r.engine as string | null) ?? null,
        modelSource: (r.modelSource as string | null) ?? null,
        vramBytes: numOrNull(r.vramBytes),
      }));
    },

    claim: (filter, now, ttlMs) => claimWith(db, filter, now, ttlMs),

    accept: (lease, now, ttlMs) => updateUnderLease(db, lease, now, sql`"status" = 'RUNNING', "leaseExpiresAt" = ${now + ttlMs}, "updatedAt" = ${now}`),

    decline: (lease, now) =>
      updateUnderLease(
        db,
        lease,
        now,
        sql`"status" = 'QUEUED', "leaseId" = NULL, "leaseWorker" = NULL, "leaseExpiresAt" = NULL,
            "attempts" = GREATEST("attempts" - 1, 0), "progress" = NULL, "updatedAt" = ${now}`,
      ),

    saveProgress: (lease, json, now) => updateUnderLease(db, lease, now, sql`"status" = 'RUNNING', "progress" = ${json}, "updatedAt" = ${now}`),

    async renew(leaseIds, now, ttlMs, holder) {
      const ids = [...new Set(leaseIds)];
      const expiresAt = now + ttlMs;
      if (ids.length === 0) return { renewed: [], lost: [], expiresAt };
      const rows = await db.rows<{ leaseId: string }>(
        sql`UPDATE "graphicsJobs" SET "leaseExpiresAt" = ${expiresAt}
            WHERE "leaseId" IN (SELECT json_array_elements_text(${JSON.stringify(ids)}::text::json))
              AND "status" IN ('OFFERED','RUNNING') AND "leaseExpiresAt" > ${now}
              ${holder === undefined ? sql`` : sql`AND "leaseWorker" = ${holder}`}
            RETURNING "leaseId"`,
      );
      const renewed = new Set(rows.map((r) => r.leaseId));
      return { renewed: ids.filter((id) => renewed.has(id)), lost: ids.filter((id) => !renewed.has(id)), expiresAt } satisfies RenewResult;
    },

    async keep(leaseIds, holder, now, ttlMs) {
      const ids = [...new Set(leaseIds)];
      if (ids.length === 0) return { kept: [], lost: [] };
      const rows = (
        await db.rows(
          sql`UPDATE "graphicsJobs" SET "leaseExpiresAt" = ${now + ttlMs}, "leaseWorker" = ${holder}, "updatedAt" = ${now}
              WHERE "leaseId" IN (SELECT json_array_elements_text(${JSON.stringify(ids)}::text::json))
                AND "status" IN ('OFFERED','RUNNING') AND "leaseExpiresAt" > ${now}
              RETURNING *`,
        )
      ).map(jobRowOf);
      const byLease = new Map(rows.map((r) => [r.leaseId!, r]));
      return { kept: ids.flatMap((id) => byLease.get(id) ?? []), lost: ids.filter((id) => !byLease.has(id)) };
    },

    current: (lease, now) => requireCurrentLease(db, lease, now),

    complete: (lease, outputsJson, now) => completeWith(db, lease, outputsJson, now),

    completeAndClaim: (lease, outputsJson, now, next) =>
      db.tx(async (q) => {
        const row = await completeWith(q, lease, outputsJson, now);
        return { row, next: await claimWith(q, next.filter, now, next.ttlMs) };
      }),

    fail(lease, error, retryable, now) {
      const text = (error.trim() || "the worker reported a failure without a message").slice(0, MAX_ERROR_CHARS);
      // One statement decides requeue or fail from the row's own attempts, under the lease.
      const requeue = sql`(${retryable}::boolean AND "attempts" < "maxAttempts")`;
      return updateUnderLease(
        db,
        lease,
        now,
        sql`"status" = CASE WHEN ${requeue} THEN 'QUEUED' ELSE 'FAILED' END, "error" = ${text},
            "leaseId" = NULL, "leaseExpiresAt" = NULL,
            "leaseWorker" = CASE WHEN ${requeue} THEN NULL ELSE "leaseWorker" END,
            "progress" = CASE WHEN ${requeue} THEN NULL ELSE "progress" END,
            "finishedAt" = CASE WHEN ${requeue} THEN "finishedAt" ELSE ${now}::bigint END,
            "updatedAt" = ${now}`,
      );
    },

    async expire(now) {
      // Rows locked by a reaper on another replica are skipped: each lease is taken back once.
      return db.tx(async (q) => {
        const stale = (
          await q.rows(
            sql`SELECT * FROM "graphicsJobs" WHERE "status" IN ('OFFERED','RUNNING') AND "leaseExpiresAt" <= ${now}
                ORDER BY "leaseExpiresAt" LIMIT ${EXPIRE_BATCH} FOR UPDATE SKIP LOCKED`,
          )
        ).map(jobRowOf);
        if (stale.length === 0) return [];
        const changes = stale.map((row) => {
          const giveUp = row.attempts >= row.maxAttempts;
          return {
            id: row.id,
            leaseId: row.leaseId,
            giveUp,
            error: giveUp ? lostForGood(row.leaseWorker, row.maxAttempts) : lostAndQueuedAgain(row.leaseWorker),
          };
        });
        const updated = (
          await q.rows(
            sql`UPDATE "graphicsJobs" g SET
                  "status" = CASE WHEN c."giveUp" THEN 'FAILED' ELSE 'QUEUED' END,
                  "error" = c."error", "leaseId" = NULL, "leaseExpiresAt" = NULL,
                  "leaseWorker" = CASE WHEN c."giveUp" THEN g."leaseWorker" ELSE NULL END,
                  "progress" = CASE WHEN c."giveUp" THEN g."progress" ELSE NULL END,
                  "finishedAt" = CASE WHEN c."giveUp" THEN ${now}::bigint ELSE g."finishedAt" END,
                  "updatedAt" = ${now}
                FROM json_to_recordset(${JSON.stringify(changes)}::text::json) AS c("id" text, "leaseId" text, "giveUp" boolean, "error" text)
                WHERE g."id" = c."id" AND g."leaseId" = c."leaseId" AND g."status" IN ('OFFERED','RUNNING')
                RETURNING g.*`,
          )
        ).map(jobRowOf);
        const before = new Map(stale.map((r) => [r.id, r]));
        return updated
          .map((row): ExpiredLease => {
            const old = before.get(row.id)!;
            return { row, leaseId: old.leaseId!, leaseWorker: old.leaseWorker };
          })
          .sort((a, b) => num(before.get(a.row.id)!.leaseExpiresAt) - num(before.get(b.row.id)!.leaseExpiresAt));
      });
    },

    get: (jobId) => selectJob(db, jobId),
  };
}

/** The claim: the next QUEUED job the filter allows, or the one it names, moved to OFFERED under a fresh lease. */
async function claimWith(q: PgQuery, filter: ClaimFilter, now: number, ttlMs: number): Promise<JobRow | undefined> {
  const matches = sql`"status" = 'QUEUED'
    AND ("engine" IS NULL OR "engine" IN (SELECT json_array_elements_text(${JSON.stringify(filter.engines)}::text::json)))
    AND "id" NOT IN (SELECT json_array_elements_text(${JSON.stringify(filter.excludeJobIds ?? [])}::text::json))
    ${filter.excludeModels?.length ? sql`AND "model" NOT IN (SELECT json_array_elements_text(${JSON.stringify(filter.excludeModels)}::text::json))` : sql``}
    ${filter.maxVramBytes === undefined ? sql`` : sql`AND ("vramBytes" IS NULL OR "vramBytes" <= ${filter.maxVramBytes})`}`;
  const set = sql`"status" = 'OFFERED', "leaseId" = ${newLeaseId()}, "leaseWorker" = ${filter.workerName},
    "leaseExpiresAt" = ${now + ttlMs}, "attempts" = "attempts" + 1, "updatedAt" = ${now}`;
  const [row] =
    filter.jobId === undefined
      ? await q.rows(
          sql`UPDATE "graphicsJobs" SET ${set} WHERE "id" = (
                SELECT "id" FROM "graphicsJobs" WHERE ${matches}
                ORDER BY "priority" DESC NULLS LAST, "createdAt" ASC LIMIT 1 FOR UPDATE SKIP LOCKED)
              AND "status" = 'QUEUED' RETURNING *`,
        )
      : await q.rows(sql`UPDATE "graphicsJobs" SET ${set} WHERE ${matches} AND "id" = ${filter.jobId} RETURNING *`);
  return row ? jobRowOf(row) : undefined;
}

/** The complete: SUCCEEDED with its outputs under the current lease, exactly once. */
async function completeWith(q: PgQuery, lease: LeaseRef, outputsJson: string, now: number): Promise<JobRow> {
  // The outputs' bytes were stored just before (unverified); this statement marks them
  // referenced together with the row, so the blob sweep never takes a committed output.
  const [row] = await q.rows(
    sql`WITH done AS (
          UPDATE "graphicsJobs" SET "status" = 'SUCCEEDED', "outputs" = ${outputsJson}, "error" = '',
            "leaseId" = NULL, "leaseExpiresAt" = NULL, "updatedAt" = ${now}, "finishedAt" = ${now}
          WHERE "id" = ${lease.jobId} AND "leaseId" = ${lease.leaseId}
            AND "status" IN ('OFFERED','RUNNING') AND "leaseExpiresAt" > ${now}
          RETURNING *),
        kept AS (
          UPDATE "studioOutputBlobs" SET "verified" = true
          WHERE NOT "verified" AND "sha256" IN (SELECT o->>'sha256' FROM done, json_array_elements(done."outputs"::json) o))
        SELECT * FROM done`,
  );
  if (row) return jobRowOf(row);
  await requireCurrentLease(q, lease, now);
  throw new Error("unreachable: the lease was current but the complete changed nothing");
}
