import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Checkpointer } from "../../server/db/checkpointer.js";
import { openStudioDb, type StudioDb } from "../../server/db/open.js";

let dir: string;
let db: StudioDb;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "checkpointer-"));
  db = openStudioDb(dir);
  db.sqlite.exec("CREATE TABLE blob (k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const dbBytes = () => statSync(db.path).size;

test("the studio's connection never checkpoints; the thread copies the WAL into the file, and stops cleanly", async () => {
  const checkpointer = Checkpointer.start(db, { intervalMs: 20 });
  expect(db.sqlite.query<{ wal_autocheckpoint: number }, []>("PRAGMA wal_autocheckpoint").get()?.wal_autocheckpoint).toBe(0);
  const before = dbBytes();
  // About 8 MiB of pages in the WAL: past the 1,000 pages at which the connection would have checkpointed itself.
  const insert = db.sqlite.query("INSERT INTO blob (v) VALUES (?)");
  for (let i = 0; i < 2000; i++) insert.run("x".repeat(4000));
  // Only the thread can have grown the database file.
  const deadline = Date.now() + 10_000;
  while (dbBytes() < before + 4_000_000 && Date.now() < deadline) await Bun.sleep(20);
  expect(dbBytes()).toBeGreaterThan(before + 4_000_000);
  await checkpointer.stop();
  await checkpointer.stop();
  expect(db.sqlite.query<{ n: number }, []>("SELECT count(*) AS n FROM blob").get()?.n).toBe(2000);
});
