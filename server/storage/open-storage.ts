import type { ServerConfig } from "../config.js";
import type { Logger } from "../log.js";
import { openPgStorage } from "./pg-storage.js";
import { openSqliteStorage, type StorageDeps } from "./sqlite-storage.js";
import type { Storage } from "./storage.js";

/**
 * Opens the studio's storage: PostgreSQL when --database-url is set (shared by every
 * replica), else the embedded SQLite file under --data-dir. Throws StorageOpenError
 * with a one-line reason (no password) when the database cannot be used.
 */
export async function openStorage(config: ServerConfig, deps: StorageDeps): Promise<Storage> {
  if (config.databaseUrl === undefined) return openSqliteStorage(config.dataDir, deps);
  const log = deps.logger?.child({ module: "storage" });
  return openPgStorage(config.databaseUrl, deps, { onError: (err, what) => log?.warn({ err }, what) });
}
