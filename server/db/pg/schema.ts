import { sql } from "drizzle-orm";
import { bigint, boolean, index, integer, pgTable, primaryKey, text, uniqueIndex, customType } from "drizzle-orm/pg-core";

/** Unix milliseconds: bigint in PostgreSQL, a number in the studio (exact below 2^53). */
const millis = (name: string) => bigint(name, { mode: "number" });

const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({ dataType: () => "bytea" });

/**
 * The PostgreSQL schema: the same tables and columns (quoted camelCase) as the SQLite
 * schema in ../schema.ts, so rows read the same on both, plus what several replicas
 * share beyond SQLite's file: output bytes and the replicas' worker lists.
 */
export const studioModels = pgTable("studioModels", {
  name: text("name").primaryKey(),
  enabled: boolean("enabled").notNull().default(true),
  engine: text("engine").notNull(),
  source: text("source").notNull(),
  description: text("description").notNull().default(""),
  createdAt: millis("createdAt").notNull(),
  updatedAt: millis("updatedAt").notNull(),
});

/** The job queue, as graphicsJobs in ../schema.ts. */
export const graphicsJobs = pgTable(
  "graphicsJobs",
  {
    id: text("id").primaryKey(),
    model: text("model").notNull(),
    engine: text("engine"),
    status: text("status").notNull(),
    priority: integer("priority").notNull().default(0),
    task: text("task").notNull(),
    modelSource: text("modelSource"),
    /** The GPU memory a job of `modelSource` needs (stated or estimated: contract/vram.ts), so claims can filter in SQL; NULL when none is counted. */
    vramBytes: bigint("vramBytes", { mode: "number" }),
    attempts: integer("attempts").notNull().default(0),
    maxAttempts: integer("maxAttempts").notNull().default(3),
    leaseId: text("leaseId"),
    leaseExpiresAt: millis("leaseExpiresAt"),
    leaseWorker: text("leaseWorker"),
    error: text("error").notNull().default(""),
    outputs: text("outputs").notNull().default("[]"),
    progress: text("progress"),
    idempotencyKey: text("idempotencyKey"),
    promotedFrom: text("promotedFrom"),
    createdAt: millis("createdAt").notNull(),
    updatedAt: millis("updatedAt").notNull(),
    finishedAt: millis("finishedAt"),
  },
  (t) => [
    // Only queued rows: the claim's ORDER BY priority DESC, createdAt walks it, and it stays as small as the queue.
    index("graphicsJobs_queue_order").on(t.priority.desc(), t.createdAt).where(sql`"status" = 'QUEUED'`),
    index("graphicsJobs_list").on(t.createdAt, t.id),
    index("graphicsJobs_model_list").on(t.model, t.createdAt),
    index("graphicsJobs_lease").on(t.status, t.leaseExpiresAt),
    index("graphicsJobs_lease_id").on(t.leaseId).where(sql`"leaseId" IS NOT NULL`),
    uniqueIndex("graphicsJobs_idempotency").on(t.idempotencyKey).where(sql`"idempotencyKey" IS NOT NULL`),
  ],
);

/** Text jobs' streamed output so far, as streamedTexts in ../schema.ts. */
export const streamedTexts = pgTable("streamedTexts", {
  jobId: text("jobId").primaryKey(),
  attempt: integer("attempt").notNull(),
  text: text("text").notNull(),
  reasoning: text("reasoning").notNull(),
  tokens: integer("tokens").notNull(),
  updatedAt: millis("updatedAt").notNull(),
});

/** Bearer tokens; only a hash of the secret is stored. */
export const apiTokens = pgTable(
  "apiTokens",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    role: text("role").notNull(),
    secretHash: text("secretHash").notNull(),
    createdAt: millis("createdAt").notNull(),
    lastUsedAt: millis("lastUsedAt"),
    revokedAt: millis("revokedAt"),
  },
  (t) => [uniqueIndex("apiTokens_hash").on(t.secretHash)],
);

/**
 * Output bytes, content-addressed: one row per digest. `verified` is set by the complete
 * that commits a job naming the digest (in the same statement), so a row still unverified
 * after a grace period belongs to no job and is swept.
 */
export const studioOutputBlobs = pgTable(
  "studioOutputBlobs",
  {
    sha256: text("sha256").primaryKey(),
    size: millis("size").notNull(),
    createdAt: millis("createdAt").notNull(),
    verified: boolean("verified").notNull().default(false),
  },
  (t) => [index("studioOutputBlobs_unverified").on(t.createdAt).where(sql`NOT "verified"`)],
);

/** The bytes of an output in pieces of at most 1 MiB, in order of `seq`. */
export const studioOutputChunks = pgTable(
  "studioOutputChunks",
  {
    sha256: text("sha256")
      .notNull()
      .references(() => studioOutputBlobs.sha256, { onDelete: "cascade" }),
    seq: integer("seq").notNull(),
    data: bytea("data").notNull(),
  },
  (t) => [primaryKey({ columns: [t.sha256, t.seq] })],
);

/** Each running replica and the workers connected to it (protobuf JSON), for ListWorkers on any replica. */
export const studioReplicas = pgTable("studioReplicas", {
  id: text("id").primaryKey(),
  startedAt: millis("startedAt").notNull(),
  seenAt: millis("seenAt").notNull(),
  workers: text("workers").notNull().default("[]"),
});
