import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteTokenStore } from "../../server/auth/sqlite-token-store.js";
import { openStudioDb } from "../../server/db/open.js";
import { sql } from "drizzle-orm";
import { PgTokenStore } from "../../server/auth/pg-token-store.js";
import { openTestPgStorage } from "../helpers/pg-storage.js";
import { exerciseTokenStore, TOUCH_INTERVAL_MS } from "./token-store-suite.js";

exerciseTokenStore("SQLite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "studio-tokens-"));
  const db = openStudioDb(dir);
  let t = 1_800_000_000_000;
  return {
    store: new SqliteTokenStore(db, () => t, { touchIntervalMs: TOUCH_INTERVAL_MS }),
    advance: (ms) => void (t += ms),
    storedHashes: async () => db.sqlite.query<{ secretHash: string }, []>("SELECT secretHash FROM apiTokens").all().map((r) => r.secretHash),
    close: () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

exerciseTokenStore("PostgreSQL", async () => {
  let t = 1_800_000_000_000;
  const { storage, url } = await openTestPgStorage({ now: () => t });
  const db = storage.pg!;
  // The store as the suite configures it, on the storage's database (cache off: the suite reads lastUsedAt back at once).
  const store = new PgTokenStore(db, () => t, { touchIntervalMs: TOUCH_INTERVAL_MS, cacheMs: 0 });
  void url;
  return {
    store,
    advance: (ms) => void (t += ms),
    storedHashes: async () => (await db.rows<{ secretHash: string }>(sql`SELECT "secretHash" FROM "apiTokens"`)).map((r) => r.secretHash),
    close: () => storage.close(),
  };
});
