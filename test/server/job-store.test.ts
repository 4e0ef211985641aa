import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStudioDb } from "../../server/db/open.js";
import { JobEvents } from "../../server/events/job-events.js";
import { SqliteJobStore } from "../../server/jobs/sqlite-job-store.js";
import { SqliteModelRegistry } from "../../server/registry/sqlite-model-registry.js";
import { sql } from "drizzle-orm";
import { openTestPgStorage } from "../helpers/pg-storage.js";
import { exerciseJobStore } from "./job-store-suite.js";

exerciseJobStore("SQLite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "studio-store-"));
  const db = openStudioDb(dir);
  let tick = 0;
  const now = () => 1_800_000_000_000 + ++tick;
  const events = new JobEvents();
  const registry = new SqliteModelRegistry(db, now);
  return {
    store: new SqliteJobStore({ db, events, now, resolveModel: (n) => registry.resolveSync(n) }),
    events,
    setState: async (id, s) =>
      void db.sqlite.run(
        "UPDATE graphicsJobs SET status = ?, leaseId = ?, leaseWorker = ?, error = ? WHERE id = ?",
        [s.status, s.leaseId ?? null, s.leaseWorker ?? null, s.error ?? "", id],
      ),
    registry,
    count: async () => (db.sqlite.query("SELECT count(*) AS n FROM graphicsJobs").get() as { n: number }).n,
    close: () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

exerciseJobStore("PostgreSQL", async () => {
  let tick = 0;
  const now = () => 1_800_000_000_000 + ++tick;
  const events = new JobEvents();
  const { storage } = await openTestPgStorage({ events, now });
  const db = storage.pg!;
  return {
    store: storage.jobs,
    events,
    setState: async (id, s) =>
      void (await db.rows(
        sql`UPDATE "graphicsJobs" SET "status" = ${s.status}, "leaseId" = ${s.leaseId ?? null}, "leaseWorker" = ${s.leaseWorker ?? null},
            "error" = ${s.error ?? ""} WHERE "id" = ${id}`,
      )),
    registry: storage.registry,
    count: async () => Number((await db.rows<{ n: string }>(sql`SELECT count(*) AS n FROM "graphicsJobs"`))[0]!.n),
    close: () => storage.close(),
  };
});
