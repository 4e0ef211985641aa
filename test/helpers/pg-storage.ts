import { JobEvents } from "../../server/events/job-events.js";
import { migratePg } from "../../server/db/pg/migrate.js";
import { connectPg } from "../../server/db/pg/pg-db.js";
import { openPgStorage } from "../../server/storage/pg-storage.js";
import type { Storage } from "../../server/storage/storage.js";
import type { StorageDeps } from "../../server/storage/sqlite-storage.js";
import { sharedTestPg, type TestPg } from "./test-pg.js";

const templates = new WeakMap<TestPg, Promise<string>>();

/** A migrated (and seeded) database to copy: migrating once per cluster, copying per test, keeps suites fast. */
function migratedTemplate(pg: TestPg): Promise<string> {
  let name = templates.get(pg);
  if (!name) {
    name = (async () => {
      const url = await pg.createDatabase("template");
      const db = connectPg({ url, applicationName: "studio-test-template" });
      try {
        await migratePg(db);
      } finally {
        await db.close();
      }
      return new URL(url).pathname.slice(1);
    })();
    templates.set(pg, name);
  }
  return name;
}

/** A fresh, migrated database on the run's shared cluster (or `pg`); its URL. */
export async function freshPgDatabase(pg?: TestPg): Promise<string> {
  const cluster = pg ?? (await sharedTestPg());
  return cluster.createDatabase("t", await migratedTemplate(cluster));
}

/** A PostgreSQL storage on a fresh database, as a studio replica opens it. */
export async function openTestPgStorage(deps: Partial<StorageDeps> = {}, url?: string): Promise<{ storage: Storage; url: string }> {
  const dbUrl = url ?? (await freshPgDatabase());
  const storage = await openPgStorage(dbUrl, { events: deps.events ?? new JobEvents(), now: deps.now ?? Date.now });
  return { storage, url: dbUrl };
}
