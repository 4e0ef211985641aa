import { sql } from "drizzle-orm";
import { readMigrationFiles } from "drizzle-orm/migrator";
import { join } from "node:path";
import type { PgDb } from "./pg-db.js";

const MIGRATIONS = join(import.meta.dir, "migrations");

/** The advisory lock key every replica takes to migrate: one at a time, the others wait and then find nothing to do. */
export const MIGRATION_LOCK_KEY = 0x5374_7564; // "Stud"

/** The database holds migrations this build does not know: a newer studio migrated it. */
export class NewerSchemaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NewerSchemaError";
  }
}

/**
 * Applies the committed PostgreSQL migrations (drizzle-kit's, in drizzle's own bookkeeping
 * table `drizzle.__drizzle_migrations`) in one transaction under an advisory lock, so N
 * replicas started together migrate once. A database with a migration newer than this
 * build's newest is refused before anything is applied. Returns how many were applied.
 */
export async function migratePg(db: PgDb, migrationsFolder = MIGRATIONS): Promise<number> {
  const migrations = readMigrationFiles({ migrationsFolder });
  const newest = migrations.reduce((max, m) => Math.max(max, m.folderMillis), 0);
  const known = new Set(migrations.map((m) => m.folderMillis));
  return db.tx(async (q) => {
    await q.rows(sql`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
    await q.rows(sql`CREATE SCHEMA IF NOT EXISTS drizzle`);
    await q.rows(
      sql`CREATE TABLE IF NOT EXISTS drizzle.__drizzle_migrations (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)`,
    );
    const applied = (await q.rows<{ created_at: string | number | null }>(sql`SELECT created_at FROM drizzle.__drizzle_migrations`)).map((r) =>
      Number(r.created_at),
    );
    const unknown = applied.filter((at) => at > newest || !known.has(at));
    if (unknown.length > 0)
      throw new NewerSchemaError(
        `the database schema is newer than this studio: it has ${unknown.length} migration(s) this build does not know ` +
          `(the newest from ${new Date(Math.max(...unknown)).toISOString()}); upgrade this studio to the version that migrated it`,
      );
    const done = new Set(applied);
    let count = 0;
    for (const m of migrations) {
      if (done.has(m.folderMillis)) continue;
      for (const statement of m.sql) if (statement.trim() !== "") await q.rows(sql.raw(statement));
      await q.rows(sql`INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES (${m.hash}, ${m.folderMillis})`);
      count++;
    }
    return count;
  });
}
