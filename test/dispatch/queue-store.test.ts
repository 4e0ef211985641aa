import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStudioDb } from "../../server/db/open.js";
import { createSqliteQueueStore } from "../../server/dispatch/sqlite/sqlite-queue-store.js";
import { sql } from "drizzle-orm";
import { openTestPgStorage } from "../helpers/pg-storage.js";
import { exerciseQueueStore } from "./queue-store-suite.js";

exerciseQueueStore("sqlite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "queue-store-"));
  const db = openStudioDb(dir);
  return {
    store: createSqliteQueueStore(db),
    async insert(job) {
      db.sqlite.run(
        `INSERT INTO graphicsJobs (id, model, engine, status, priority, task, maxAttempts, vramBytes, createdAt, updatedAt)
         VALUES (?, 'm', ?, 'QUEUED', ?, '{"image":{"prompt":"p"}}', ?, ?, ?, ?)`,
        [job.id, job.engine, job.priority ?? 0, job.maxAttempts ?? 3, job.vramBytes ?? null, job.createdAt, job.createdAt],
      );
    },
    async status(id) {
      return (db.sqlite.query("SELECT status FROM graphicsJobs WHERE id = ?").get(id) as { status: string }).status;
    },
    async close() {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

exerciseQueueStore("postgres", async () => {
  const { storage } = await openTestPgStorage();
  const db = storage.pg!;
  return {
    store: storage.queue,
    async insert(job) {
      await db.rows(
        sql`INSERT INTO "graphicsJobs" ("id", "model", "engine", "status", "priority", "task", "maxAttempts", "vramBytes", "createdAt", "updatedAt")
            VALUES (${job.id}, 'm', ${job.engine}, 'QUEUED', ${job.priority ?? 0}, '{"image":{"prompt":"p"}}', ${job.maxAttempts ?? 3}, ${job.vramBytes ?? null}, ${job.createdAt}, ${job.createdAt})`,
      );
    },
    async status(id) {
      const [row] = await db.rows<{ status: string }>(sql`SELECT "status" FROM "graphicsJobs" WHERE "id" = ${id}`);
      return row!.status;
    },
    close: () => storage.close(),
  };
});
