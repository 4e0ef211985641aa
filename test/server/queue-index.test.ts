import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStudioDb, type StudioDb } from "../../server/db/open.js";

/**
 * The claim's queries, copied in shape from server/dispatch/sqlite/claim.ts (claim and peekQueued):
 * if they change, change these too. The queue index must serve their ORDER BY without a sort.
 */
const MATCH = `status = 'QUEUED'
  AND (engine IS NULL OR engine IN (SELECT value FROM json_each(?)))
  AND id NOT IN (SELECT value FROM json_each(?))`;
const CLAIM = `SELECT id FROM graphicsJobs WHERE ${MATCH} ORDER BY priority DESC, createdAt ASC LIMIT 1`;
const PEEK = `SELECT id, engine, modelSource FROM graphicsJobs WHERE status = 'QUEUED'
       ORDER BY priority DESC, createdAt ASC LIMIT ?`;

let dir: string;
let db: StudioDb;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "studio-queue-index-"));
  db = openStudioDb(dir);
  // Enough rows in several states and priorities that the planner has something to choose between.
  const insert = db.sqlite.query(
    `INSERT INTO graphicsJobs (id, model, engine, status, priority, task, modelSource, attempts, maxAttempts, createdAt, updatedAt)
     VALUES (?, 'synthetic', 'synthetic', ?, ?, '{}', '{}', 0, 3, ?, ?)`,
  );
  const states = ["QUEUED", "OFFERED", "RUNNING", "SUCCEEDED", "FAILED"];
  db.sqlite.transaction(() => {
    for (let i = 0; i < 500; i++) insert.run(`job-${i}`, states[i % states.length]!, (i % 7) * 10 - 30, 1000 + i, 1000 + i);
  })();
  db.sqlite.exec("ANALYZE");
});

afterAll(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

function plan(sql: string, ...params: (string | number)[]): string {
  return db.sqlite
    .query<{ detail: string }, (string | number)[]>(`EXPLAIN QUERY PLAN ${sql}`)
    .all(...params)
    .map((r) => r.detail)
    .join("\n");
}

test("the claim's ORDER BY priority DESC, createdAt ASC walks the queue index: no temp B-tree", () => {
  const p = plan(CLAIM, '["synthetic"]', "[]");
  expect(p).toContain("graphicsJobs_queue_order");
  expect(p).not.toContain("TEMP B-TREE");
});

test("peekQueued's ORDER BY walks the queue index too", () => {
  const p = plan(PEEK, 10);
  expect(p).toContain("graphicsJobs_queue_order");
  expect(p).not.toContain("TEMP B-TREE");
});

test("the index orders as the claim does: highest priority first, then oldest", () => {
  const ids = db.sqlite.query<{ id: string }, [string, string]>(CLAIM.replace("LIMIT 1", "LIMIT 3")).all('["synthetic"]', "[]");
  const rows = ids.map(({ id }) => db.sqlite.query<{ priority: number; createdAt: number }, [string]>("SELECT priority, createdAt FROM graphicsJobs WHERE id = ?").get(id)!);
  expect(rows.map((r) => r.priority)).toEqual([30, 30, 30]);
  expect(rows.map((r) => r.createdAt)).toEqual([...rows.map((r) => r.createdAt)].sort((a, b) => a - b));
});
