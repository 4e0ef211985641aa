import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/** The registry: one row per model name; `source` is the ModelSource wire JSON. */
export const studioModels = sqliteTable("studioModels", {
  name: text("name").primaryKey(),
  enabled: integer("enabled", { mode: "boolean" }).notNull().default(true),
  engine: text("engine").notNull(),
  source: text("source").notNull(),
  description: text("description").notNull().default(""),
  createdAt: integer("createdAt").notNull(),
  updatedAt: integer("updatedAt").notNull(),
});

/**
 * The job queue. `modelSource` is the source resolved from the registry when the
 * row was written (NULL on legacy rows); `task`, `outputs` and `progress` are
 * protobuf JSON. Times are Unix milliseconds.
 */
export const graphicsJobs = sqliteTable(
  "graphicsJobs",
  {
    id: text("id").primaryKey(),
    model: text("model").notNull(),
    /** The engine of `modelSource`, kept as a column so claims can filter in SQL; NULL when there is no source. */
    engine: text("engine"),
    status: text("status").notNull(),
    priority: integer("priority").notNull().default(0),
    task: text("task").notNull(),
    modelSource: text("modelSource"),
    /** The GPU memory a job of `modelSource` needs (stated or estimated: contract/vram.ts), so claims can filter in SQL; NULL when none is counted. */
    vramBytes: integer("vramBytes"),
    attempts: integer("attempts").notNull().default(0),
    maxAttempts: integer("maxAttempts").notNull().default(3),
    leaseId: text("leaseId"),
    leaseExpiresAt: integer("leaseExpiresAt"),
    leaseWorker: text("leaseWorker"),
    error: text("error").notNull().default(""),
    outputs: text("outputs").notNull().default("[]"),
    progress: text("progress"),
    idempotencyKey: text("idempotencyKey"),
    promotedFrom: text("promotedFrom"),
    createdAt: integer("createdAt").notNull(),
    updatedAt: integer("updatedAt").notNull(),
    finishedAt: integer("finishedAt"),
  },
  (t) => [
    // priority DESC so that the claim's ORDER BY priority DESC, createdAt ASC walks the index (sqlite-core has no .desc()).
    // Partial: only queued rows are in it, so a claim removes one entry and a complete touches it not at all
    // (a full index moved every row at each status change: pages dirtied, and WAL frames, per job).
    index("graphicsJobs_queued").on(sql`"priority" DESC`, t.createdAt).where(sql`"status" = 'QUEUED'`),
    index("graphicsJobs_list").on(t.createdAt, t.id),
    index("graphicsJobs_model_list").on(t.model, t.createdAt),
    // Only leased rows (the reaper's and renewals' range on leaseExpiresAt); the same reasoning.
    index("graphicsJobs_leased").on(t.leaseExpiresAt).where(sql`"status" IN ('OFFERED','RUNNING')`),
    uniqueIndex("graphicsJobs_idempotency").on(t.idempotencyKey).where(sql`"idempotencyKey" IS NOT NULL`),
  ],
);

/**
 * Text jobs' output as their engines streamed it: the latest attempt's text so far, written by
 * the replica whose worker sends it about once a second (server/streams), so that GetJob and a
 * late watcher on any replica read it. A succeeded job's row goes: its output holds the text.
 */
export const streamedTexts = sqliteTable("streamedTexts", {
  jobId: text("jobId").primaryKey(),
  attempt: integer("attempt").notNull(),
  text: text("text").notNull(),
  reasoning: text("reasoning").notNull(),
  tokens: integer("tokens").notNull(),
  updatedAt: integer("updatedAt").notNull(),
});

/** Bearer tokens; only a hash of the secret is stored. */
export const apiTokens = sqliteTable(
  "apiTokens",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    role: text("role").notNull(),
    secretHash: text("secretHash").notNull(),
    createdAt: integer("createdAt").notNull(),
    lastUsedAt: integer("lastUsedAt"),
    revokedAt: integer("revokedAt"),
  },
  (t) => [uniqueIndex("apiTokens_hash").on(t.secretHash)],
);
