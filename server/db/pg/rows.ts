import type { JobRow } from "../../jobs/job-row.js";

/** A bigint column as a number (drivers read int8 as text); null stays null. */
export function num(v: unknown): number {
  return typeof v === "number" ? v : Number(v);
}

export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : num(v);
}

/** A graphicsJobs row read with raw SQL, typed as on SQLite (times as numbers). */
export function jobRowOf(r: Record<string, unknown>): JobRow {
  return {
    id: r.id as string,
    model: r.model as string,
    engine: (r.engine as string | null) ?? null,
    status: r.status as string,
    priority: num(r.priority),
    task: r.task as string,
    modelSource: (r.modelSource as string | null) ?? null,
    vramBytes: numOrNull(r.vramBytes),
    attempts: num(r.attempts),
    maxAttempts: num(r.maxAttempts),
    leaseId: (r.leaseId as string | null) ?? null,
    leaseExpiresAt: numOrNull(r.leaseExpiresAt),
    leaseWorker: (r.leaseWorker as string | null) ?? null,
    error: r.error as string,
    outputs: r.outputs as string,
    progress: (r.progress as string | null) ?? null,
    idempotencyKey: (r.idempotencyKey as string | null) ?? null,
    promotedFrom: (r.promotedFrom as string | null) ?? null,
    createdAt: num(r.createdAt),
    updatedAt: num(r.updatedAt),
    finishedAt: numOrNull(r.finishedAt),
  };
}
