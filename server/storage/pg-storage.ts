import { sql } from "drizzle-orm";
import { randomBytes } from "node:crypto";
import { PgTokenStore } from "../auth/pg-token-store.js";
import { DATABASE_URL_SOURCE } from "../db/pg/database-url.js";
import { migratePg, NewerSchemaError } from "../db/pg/migrate.js";
import { connectPg, type PgDriver } from "../db/pg/pg-db.js";
import { createPgQueueStore } from "../dispatch/pg/pg-queue-store.js";
import { PgJobStore } from "../jobs/pg-job-store.js";
import { PgBlobs } from "../outputs/pg-blobs.js";
import { PgModelRegistry } from "../registry/pg-model-registry.js";
import { PgTextStore } from "../streams/pg-text-store.js";
import { createPgCluster } from "./pg-cluster.js";
import type { StorageDeps } from "./sqlite-storage.js";
import { StorageOpenError, type QueueStats, type Storage } from "./storage.js";

export interface PgStorageOptions {
  driver?: PgDriver;
  /** Pool size per replica. */
  max?: number;
  onError?: (err: unknown, what: string) => void;
}

/** How often a replica sweeps output bytes no job committed (any replica may; each is safe). */
const BLOB_SWEEP_INTERVAL_MS = 10 * 60_000;

/**
 * Every store on one PostgreSQL database shared by all replicas: connects (failing fast,
 * the password never shown), migrates under the advisory lock (refusing a newer schema),
 * and starts listening for the other replicas' changes.
 */
export async function openPgStorage(url: string, deps: StorageDeps, { driver, max, onError = () => {} }: PgStorageOptions = {}): Promise<Storage> {
  const applicationName = `studio-${randomBytes(6).toString("hex")}`;
  const db = connectPg({ url, applicationName, driver, max });
  try {
    await db.rows(sql`SELECT 1`);
  } catch (err) {
    await db.close().catch(() => {});
    throw new StorageOpenError(`cannot reach the database at ${db.redactedUrl} (${DATABASE_URL_SOURCE}): ${reason(err)}`);
  }
  try {
    await migratePg(db);
  } catch (err) {
    await db.close().catch(() => {});
    if (err instanceof NewerSchemaError) throw new StorageOpenError(`${db.redactedUrl}: ${err.message}`);
    throw new StorageOpenError(`migrating the database at ${db.redactedUrl} failed: ${reason(err)}`);
  }
  const registry = new PgModelRegistry(db, deps.now);
  const tokens = new PgTokenStore(db, deps.now);
  const blobs = new PgBlobs(db, { now: deps.now });
  const cluster = createPgCluster(db, { now: deps.now, onError });
  // A revocation on any replica ends the cached trust here at once; a gap in notifications drops it all.
  cluster.onTokenChange((c) => c.kind === "revoked" && tokens.forget(c.tokenId));
  cluster.onResync(() => tokens.forget());
  try {
    await cluster.start();
  } catch (err) {
    await cluster.stop().catch(() => {});
    await db.close().catch(() => {});
    throw new StorageOpenError(`listening for the other replicas on ${db.redactedUrl} failed: ${reason(err)}`);
  }
  const sweep = setInterval(() => void blobs.sweep().catch((err) => onError(err, "output sweep")), BLOB_SWEEP_INTERVAL_MS);
  sweep.unref();
  return {
    dialect: "postgres",
    registry,
    jobs: new PgJobStore({ db, events: deps.events, now: deps.now, sources: registry.sources }),
    queue: createPgQueueStore(db),
    tokens,
    blobs,
    stats: pgQueueStats(db),
    texts: new PgTextStore(db, deps.now),
    cluster,
    pg: db,
    async readiness() {
      const problem = await Promise.race([
        db.rows(sql`SELECT 1`).then(
          () => undefined,
          (err: unknown) => `database: ${reason(err)}`,
        ),
        Bun.sleep(2000).then(() => "database: no answer within 2 s"),
      ]);
      return problem ?? cluster.problem();
    },
    async close() {
      clearInterval(sweep);
      await cluster.stop();
      await db.close();
    },
  };
}

function pgQueueStats(db: ReturnType<typeof connectPg>): QueueStats {
  return {
    jobCounts: async () =>
      (await db.rows<{ status: string; n: string | number }>(sql`SELECT "status", count(*) AS n FROM "graphicsJobs" GROUP BY "status"`)).map(
        (r) => ({ status: r.status, n: Number(r.n) }),
      ),
    queuedByModel: async () =>
      (
        await db.rows<{ model: string; n: string | number; oldest: string | number }>(
          sql`SELECT "model", count(*) AS n, min("createdAt") AS oldest FROM "graphicsJobs" WHERE "status" = 'QUEUED' GROUP BY "model"`,
        )
      ).map((r) => ({ model: r.model, n: Number(r.n), oldest: Number(r.oldest) })),
  };
}

/** An error's message without anything that could hold the URL's password (drivers do not echo it, but be sure). */
function reason(err: unknown): string {
  const e = (err as { cause?: unknown }).cause ?? err;
  const text = e instanceof Error ? e.message : String(e);
  return text.replace(/postgres(ql)?:\/\/[^\s@/]*@/g, "postgres://***@").split("\n")[0]!;
}
