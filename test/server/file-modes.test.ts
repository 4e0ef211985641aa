import { afterEach, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStudioDb } from "../../server/db/open.js";

/**
 * Issue 16, item 12: the database was created 0644 in a 0755 data dir, so every local user could
 * read prompts and token hashes. The data dir is now 0700 and the database, its WAL and shared
 * memory file 0600, also when an older studio left them open.
 */
let root: string | undefined;
afterEach(() => {
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
});

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

test("a new data dir is 0700 and the database, -wal and -shm are 0600", () => {
  root = mkdtempSync(join(tmpdir(), "studio-modes-"));
  chmodSync(root, 0o755);
  const dataDir = join(root, "data");
  const db = openStudioDb(dataDir);
  try {
    db.sqlite.exec("CREATE TABLE IF NOT EXISTS modes_probe (x)");
    db.sqlite.exec("INSERT INTO modes_probe VALUES (1)");
    expect(mode(dataDir)).toBe("700");
    for (const f of ["studio.db", "studio.db-wal", "studio.db-shm"]) {
      expect(existsSync(join(dataDir, f))).toBe(true);
      expect(`${f} ${mode(join(dataDir, f))}`).toBe(`${f} 600`);
    }
  } finally {
    db.close();
  }
});

test("a data dir and database an older studio left readable by others are narrowed when opened", () => {
  root = mkdtempSync(join(tmpdir(), "studio-modes-"));
  const dataDir = join(root, "data");
  mkdirSync(dataDir, { mode: 0o755 });
  chmodSync(dataDir, 0o755);
  const old = new Database(join(dataDir, "studio.db"), { create: true });
  old.exec("PRAGMA journal_mode = WAL");
  old.exec("CREATE TABLE t (x)");
  old.close();
  chmodSync(join(dataDir, "studio.db"), 0o644);
  const db = openStudioDb(dataDir);
  try {
    expect(mode(dataDir)).toBe("700");
    expect(mode(join(dataDir, "studio.db"))).toBe("600");
    expect(mode(join(dataDir, "studio.db-wal"))).toBe("600");
  } finally {
    db.close();
  }
});
