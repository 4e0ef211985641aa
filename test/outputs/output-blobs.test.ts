import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStudioDb } from "../../server/db/open.js";
import { createSqliteQueueStore } from "../../server/dispatch/sqlite/sqlite-queue-store.js";
import { FileBlobs } from "../../server/outputs/file-blobs.js";
import { sqliteOutputReferences } from "../../server/storage/sqlite-storage.js";
import { sql } from "drizzle-orm";
import { PgBlobs } from "../../server/outputs/pg-blobs.js";
import { openTestPgStorage } from "../helpers/pg-storage.js";
import { exerciseOutputBlobs } from "./output-blobs-suite.js";

exerciseOutputBlobs("files beside SQLite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "studio-blobs-"));
  const db = openStudioDb(dir);
  const root = join(dir, "outputs");
  const tmpDir = join(root, ".tmp");
  mkdirSync(tmpDir, { recursive: true });
  const blobs = new FileBlobs(root, sqliteOutputReferences(db), tmpDir);
  return {
    blobs,
    tmpDir,
    queue: createSqliteQueueStore(db),
    insertJob: async (id) =>
      void db.sqlite.run(
        `INSERT INTO graphicsJobs (id, model, engine, status, task, createdAt, updatedAt) VALUES (?, 'synthetic', 'synthetic', 'QUEUED', '{}', 1, 1)`,
        [id],
      ),
    sweepNow: () => blobs.sweep(),
    close: () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

exerciseOutputBlobs("rows in PostgreSQL", async () => {
  const { storage } = await openTestPgStorage();
  const tmpDir = mkdtempSync(join(tmpdir(), "studio-pg-blobs-"));
  const blobs = storage.blobs as PgBlobs;
  return {
    blobs,
    tmpDir,
    queue: storage.queue,
    insertJob: async (id) =>
      void (await storage.pg!.rows(
        sql`INSERT INTO "graphicsJobs" ("id", "model", "engine", "status", "task", "createdAt", "updatedAt") VALUES (${id}, 'synthetic', 'synthetic', 'QUEUED', '{}', 1, 1)`,
      )),
    sweepNow: () => blobs.sweepOlderThan(Number.MAX_SAFE_INTEGER),
    close: async () => {
      await storage.close();
      rmSync(tmpDir, { recursive: true, force: true });
    },
  };
});
