import type { StudioDb } from "../db/open.js";
import { sendJson, sendText, type HttpRoute } from "../http/http-routes.js";
import type { StudioMetrics } from "./studio-metrics.js";

/** Why the studio is not ready, or undefined when it is: the database takes a write and migrations are applied. */
export function readinessProblem(db: StudioDb): string | undefined {
  try {
    const applied = db.sqlite.query<{ n: number }, []>("SELECT count(*) AS n FROM __drizzle_migrations").get()?.n ?? 0;
    if (applied === 0) return "no migrations applied";
    for (const table of ["studioModels", "graphicsJobs", "apiTokens"]) {
      const found = db.sqlite.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table);
      if (!found) return `table ${table} is missing`;
    }
    // A real write (taking the write lock) that is rolled back: proves the file is writable and not locked out.
    db.sqlite.exec("BEGIN IMMEDIATE");
    try {
      db.sqlite.exec(
        "INSERT INTO apiTokens (id, name, role, secretHash, createdAt) VALUES ('readyz-probe', 'readyz', 'none', 'readyz-probe', 0)",
      );
    } finally {
      db.sqlite.exec("ROLLBACK");
    }
    return undefined;
  } catch (err) {
    return `database: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/**
 * The open operational routes: GET /healthz (the process answers), GET /readyz
 * (503 with the reason when the database is not writable or not migrated) and
 * GET /metrics (Prometheus text). They carry no job data, so they need no token,
 * which is what probes and scrapers expect; keep /metrics off the public internet.
 */
export function opsRoutes(db: StudioDb, metrics: StudioMetrics): HttpRoute[] {
  return [
    { method: "GET", path: /^\/healthz$/, handle: (_req, res) => sendJson(res, 200, { status: "ok" }) },
    {
      method: "GET",
      path: /^\/readyz$/,
      handle(_req, res) {
        const problem = readinessProblem(db);
        sendJson(res, problem ? 503 : 200, problem ? { status: "unavailable", problem } : { status: "ready" });
      },
    },
    {
      method: "GET",
      path: /^\/metrics$/,
      async handle(_req, res) {
        sendText(res, 200, await metrics.render(), metrics.registry.contentType);
      },
    },
  ];
}
