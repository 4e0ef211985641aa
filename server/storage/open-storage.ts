import type { ServerConfig } from "../config.js";
import { openSqliteStorage, type StorageDeps } from "./sqlite-storage.js";
import type { Storage } from "./storage.js";

/** Opens the studio's storage: the embedded SQLite file under --data-dir unless a database URL says otherwise. */
export async function openStorage(config: ServerConfig, deps: StorageDeps): Promise<Storage> {
  return openSqliteStorage(config.dataDir, deps);
}
