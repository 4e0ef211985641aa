import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStudioDb, type StudioDb } from "../../server/db/open.js";
import { claim, peekQueued } from "../../server/dispatch/sqlite/claim.js";

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

type Args = (string | number | null)[];

/**
 * The statements `run` sends to SQLite, with their arguments, read by wrapping the handle's
 * query/prepare: what is checked below is the SQL claim.ts runs, not a copy of it.
 */
function statementsOf(run: () => void): Array<{ sql: string; args: Args }> {
  const seen: Array<{ sql: string; args: Args }> = [];
  const sqlite = db.sqlite as unknown as Record<string, unknown>;
  for (const name of ["query", "prepare"]) {
    const original = (sqlite[name] as (sql: string) => object).bind(db.sqlite);
    sqlite[name] = (sql: string) => {
      const statement = original(sql) as Record<string, (...args: Args) => unknown>;
      const record = (method: string) => (...args: Args) => {
        seen.push({ sql, args });
        return statement[method]!(...args);
      };
      return { get: record("get"), all: record("all"), run: record("run") };
    };
  }
  try {
    run();
  } finally {
    delete sqlite.query;
    delete sqlite.prepare;
  }
  return seen;
}

function plan({ sql, args }: { sql: string; args: Args }): string {
  return db.sqlite
    .query<{ detail: string }, Args>(`EXPLAIN QUERY PLAN ${sql}`)
    .all(...args)
    .map((r) => r.detail)
    .join("\n");
}

test("the claim claim.ts runs walks the queue index in ORDER BY priority DESC, createdAt ASC: no temp B-tree", () => {
  const statements = statementsOf(() => claim(db, { workerName: "w", engines: ["synthetic"] }, 5000, 30_000));
  expect(statements.length).toBeGreaterThan(0);
  for (const statement of statements) {
    const p = plan(statement);
    expect(p).toContain("graphicsJobs_queue_order");
    expect(p).not.toContain("TEMP B-TREE");
  }
});

test("peekQueued's ORDER BY walks the queue index too", () => {
  const statements = statementsOf(() => peekQueued(db, 10));
  expect(statements.length).toBeGreaterThan(0);
  for (const statement of statements) {
    const p = plan(statement);
    expect(p).toContain("graphicsJobs_queue_order");
    expect(p).not.toContain("TEMP B-TREE");
  }
});

test("the claim takes the highest priority first, then the oldest", () => {
  const top = db.sqlite
    .query<{ id: string; priority: number }, []>("SELECT id, priority FROM graphicsJobs WHERE status = 'QUEUED' ORDER BY priority DESC, createdAt ASC LIMIT 3")
    .all();
  expect(top.map((r) => r.priority)).toEqual([30, 30, 30]);
  const claimed = [0, 1, 2].map(() => claim(db, { workerName: "w", engines: ["synthetic"] }, 5000, 30_000)?.id);
  expect(claimed).toEqual(top.map((r) => r.id));
});
