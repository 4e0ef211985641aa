import { Database } from "bun:sqlite";
import { join } from "node:path";
import { drizzle, type BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import { migrate } from "drizzle-orm/bun-sqlite/migrator";
import { keepPrivate } from "./file-modes.js";
import { GroupCommit } from "./group-commit.js";
import * as schema from "./schema.js";

/** The studio's database handle: drizzle over bun:sqlite, plus the raw connection for pragmas and tests. */
export interface StudioDb {
  orm: BunSQLiteDatabase<typeof schema>;
  sqlite: Database;
  path: string;
  /** The queue's writes (claims, completes, progress, renewals...), committed together once per turn. */
  group: GroupCommit;
  close(): void;
}

const MIGRATIONS = join(import.meta.dir, "migrations");

/**
 * Opens (creating if needed) `studio.db` under dataDir with WAL, synchronous=NORMAL
 * and a busy timeout, and applies the committed migrations.
 */
export function openStudioDb(dataDir: string, { busyTimeoutMs = 5000 }: { busyTimeoutMs?: number } = {}): StudioDb {
  const path = join(dataDir, "studio.db");
  keepPrivate(dataDir, path);
  const sqlite = new Database(path, { create: true, strict: true });
  sqlite.exec("PRAGMA journal_mode = WAL");
  sqlite.exec("PRAGMA synchronous = NORMAL");
  sqlite.exec(`PRAGMA busy_timeout = ${Math.trunc(busyTimeoutMs)}`);
  sqlite.exec("PRAGMA foreign_keys = ON");
  const orm = drizzle({ client: sqlite, schema });
  migrate(orm, { migrationsFolder: MIGRATIONS });
  const group = new GroupCommit(sqlite);
  return {
    orm,
    sqlite,
    path,
    group,
    close: () => {
      group.flush();
      sqlite.close();
    },
  };
}

/**
 * Runs fn in one `BEGIN IMMEDIATE` transaction: the write lock is taken up front,
 * so two writers never both read and then fail to upgrade.
 */
export function immediate<T>(db: StudioDb, fn: () => T): T {
  return db.sqlite.transaction(fn).immediate();
}
