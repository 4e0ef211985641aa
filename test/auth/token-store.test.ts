import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteTokenStore } from "../../server/auth/sqlite-token-store.js";
import { openStudioDb } from "../../server/db/open.js";
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
