import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStudioDb } from "../../server/db/open.js";
import { SqliteModelRegistry } from "../../server/registry/sqlite-model-registry.js";
import { openTestPgStorage } from "../helpers/pg-storage.js";
import { exerciseRegistry } from "./registry-store-suite.js";

exerciseRegistry("SQLite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "studio-registry-"));
  const db = openStudioDb(dir);
  return {
    registry: new SqliteModelRegistry(db, Date.now),
    close: () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

exerciseRegistry("PostgreSQL", async () => {
  const { storage } = await openTestPgStorage();
  return { registry: storage.registry, close: () => storage.close() };
});
