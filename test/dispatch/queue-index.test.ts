import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStudioDb, type StudioDb } from "../../server/db/open.js";
import { claim, peekQueued } from "../../server/dispatch/sqlite/claim.js";
import { expire } from "../../server/dispatch/sqlite/expire.js";

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
 * query/prepare: what is checked below is the SQL the queue files run, not a copy of it.
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
  // Prepared and finalized here: an EXPLAIN of an UPDATE ... RETURNING left as a cached query stays
  // "in progress" in bun:sqlite, and every later COMMIT on the handle fails.
  const statement = db.sqlite.prepare<{ detail: string }, Args>(`EXPLAIN QUERY PLAN ${sql}`);
  try {
    return statement
      .all(...args)
      .map((r) => r.detail)
      .join("\n");
  } finally {
    statement.finalize();
  }
}

/** Every statement's plan walks `index` (in its order: no temp B-tree for the ORDER BY). */
function expectWalks(statements: { sql: string; args: Args }[], index: string): void {
  expect(statements.length).toBeGreaterThan(0);
  for (const statement of statements) {
    const p = plan(statement);
    expect(p).toContain(index);
    expect(p).not.toContain("TEMP B-TREE");
  }
}

test("the claim claim.ts runs walks the queue index in ORDER BY priority DESC, createdAt ASC: no temp B-tree", () => {
  const statements = statementsOf(() => claim(db, { workerName: "w", engines: ["synthetic"] }, 5000, 30_000));
  expectWalks(statements, "graphicsJobs_queued");
});

test("peekQueued's ORDER BY walks the queue index too", () => {
  const statements = statementsOf(() => peekQueued(db, 10));
  expectWalks(statements, "graphicsJobs_queued");
});

test("the claim takes the highest priority first, then the oldest", () => {
  const top = db.sqlite
    .query<{ id: string; priority: number }, []>("SELECT id, priority FROM graphicsJobs WHERE status = 'QUEUED' ORDER BY priority DESC, createdAt ASC LIMIT 3")
    .all();
  expect(top.map((r) => r.priority)).toEqual([30, 30, 30]);
  const claimed = [0, 1, 2].map(() => claim(db, { workerName: "w", engines: ["synthetic"] }, 5000, 30_000)?.id);
  expect(claimed).toEqual(top.map((r) => r.id));
});

test("the lease reaper's scan walks the leased index in expiry order", () => {
  const statements = statementsOf(() => expire(db, 0)).filter((s) => s.sql.trimStart().startsWith("SELECT"));
  expectWalks(statements, "graphicsJobs_leased");
});

test("the queue and lease indexes are partial: a row enters them only in their statuses", () => {
  // A claim then removes one queue entry and a complete none: a full index moved every row at each status change.
  const sqlOf = (name: string) =>
    db.sqlite.query<{ sql: string }, [string]>("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?").get(name)?.sql;
  expect(sqlOf("graphicsJobs_queued")).toContain(`WHERE "status" = 'QUEUED'`);
  expect(sqlOf("graphicsJobs_leased")).toContain(`WHERE "status" IN ('OFFERED','RUNNING')`);
  const countVia = (index: string, where: string) =>
    db.sqlite.query<{ n: number }, []>(`SELECT count(*) AS n FROM graphicsJobs INDEXED BY ${index} WHERE ${where}`).get()!.n;
  const all = (where: string) => db.sqlite.query<{ n: number }, []>(`SELECT count(*) AS n FROM graphicsJobs WHERE ${where}`).get()!.n;
  expect(countVia("graphicsJobs_queued", "status = 'QUEUED'")).toBe(all("status = 'QUEUED'"));
  expect(countVia("graphicsJobs_leased", "status IN ('OFFERED','RUNNING') AND leaseExpiresAt > 0")).toBe(
    all("status IN ('OFFERED','RUNNING') AND leaseExpiresAt > 0"),
  );
});
