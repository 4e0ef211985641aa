import { join } from "node:path";
import { SqliteTokenStore } from "../auth/sqlite-token-store.js";
import { Checkpointer } from "../db/checkpointer.js";
import type { Logger } from "../log.js";
import { openStudioDb, type StudioDb } from "../db/open.js";
import { createSqliteQueueStore } from "../dispatch/sqlite/sqlite-queue-store.js";
import type { JobEvents } from "../events/job-events.js";
import { outputsFromJson } from "../jobs/job-row.js";
import { SqliteJobStore } from "../jobs/sqlite-job-store.js";
import { FileBlobs, type OutputReferences } from "../outputs/file-blobs.js";
import { SqliteModelRegistry } from "../registry/sqlite-model-registry.js";
import { SqliteTextStore } from "../streams/sqlite-text-store.js";
import type { QueueStats, Storage } from "./storage.js";

/** What the stores share: the bus they publish job changes on and the studio's clock. */
export interface StorageDeps {
  events: JobEvents;
  now: () => number;
  /** Where storage reports trouble it works around (a checkpoint thread that stopped). */
  logger?: Logger;
}

/** Every store on the SQLite file under dataDir, and the output files beside it. */
export function openSqliteStorage(dataDir: string, deps: StorageDeps): Storage {
  const db = openStudioDb(dataDir);
  const checkpointer = Checkpointer.start(db, { logger: deps.logger });
  const registry = new SqliteModelRegistry(db, deps.now);
  return {
    dialect: "sqlite",
    registry,
    jobs: new SqliteJobStore({ db, events: deps.events, now: deps.now, resolveModel: (name) => registry.resolveSync(name) }),
    queue: createSqliteQueueStore(db),
    tokens: new SqliteTokenStore(db, deps.now),
    blobs: new FileBlobs(join(dataDir, "outputs"), sqliteOutputReferences(db)),
    stats: sqliteQueueStats(db),
    texts: new SqliteTextStore(db, deps.now),
    readiness: async () => sqliteReadiness(db),
    sqlite: db,
    close: async () => {
      await checkpointer.stop();
      db.close();
    },
  };
}

/** Which output digests job rows name (digests are hex, so LIKE needs no escaping). */
export function sqliteOutputReferences(db: StudioDb): OutputReferences {
  return {
    isReferenced(sha256) {
      const sha = sha256.toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(sha)) return false;
      return (
        db.sqlite
          .query<{ one: number }, [string]>(`SELECT 1 AS one FROM graphicsJobs WHERE outputs LIKE '%' || ? || '%' LIMIT 1`)
          .get(sha) !== null
      );
    },
    referencedDigests() {
      const referenced = new Set<string>();
      const rows = db.sqlite.query<{ outputs: string }, []>(`SELECT outputs FROM graphicsJobs WHERE outputs != '[]'`);
      for (const row of rows.iterate()) for (const o of outputsFromJson(row.outputs)) referenced.add(o.sha256.toLowerCase());
      return referenced;
    },
  };
}

function sqliteQueueStats(db: StudioDb): QueueStats {
  return {
    jobCounts: async () =>
      db.sqlite.query<{ status: string; n: number }, []>(`SELECT status, count(*) AS n FROM graphicsJobs GROUP BY status`).all(),
    queuedByModel: async () =>
      db.sqlite
        .query<{ model: string; n: number; oldest: number }, []>(
          `SELECT model, count(*) AS n, min(createdAt) AS oldest FROM graphicsJobs WHERE status = 'QUEUED' GROUP BY model`,
        )
        .all(),
  };
}

/** Why the SQLite file cannot serve, or undefined: it takes a write and migrations are applied. */
export function sqliteReadiness(db: StudioDb): string | undefined {
  try {
    const applied = db.sqlite.query<{ n: number }, []>("SELECT count(*) AS n FROM __drizzle_migrations").get()?.n ?? 0;
    if (applied === 0) return "no migrations applied";
    for (const table of ["studioModels", "graphicsJobs", "apiTokens"]) {
      const found = db.sqlite.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table);
      if (!found) return `table ${table} is missing`;
    }
    // A real write (taking the write lock) that is rolled back: proves the file is writable and not locked out.
    db.sqlite.exec("BEGIN IMMEDIATE");
    try {
      db.sqlite.exec(
        "INSERT INTO apiTokens (id, name, role, secretHash, createdAt) VALUES ('readyz-probe', 'readyz', 'none', 'readyz-probe', 0)",
      );
    } finally {
      db.sqlite.exec("ROLLBACK");
    }
    return undefined;
  } catch (err) {
    return `database: ${err instanceof Error ? err.message : String(err)}`;
  }
}
