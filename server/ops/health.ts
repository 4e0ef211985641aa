import { sendJson, sendText, type HttpRoute } from "../http/http-routes.js";
import type { Storage } from "../storage/storage.js";
import type { StudioMetrics } from "./studio-metrics.js";

/**
 * The open operational routes: GET /healthz (the process answers), GET /readyz
 * (503 with the reason when the database is not writable or not migrated) and
 * GET /metrics (Prometheus text). Readiness is the storage's: SQLite takes a write and is
 * migrated; PostgreSQL answers, is migrated and this replica listens for the others' events. They carry no job data, so they need no token,
 * which is what probes and scrapers expect; keep /metrics off the public internet.
 */
export function opsRoutes(storage: Storage, metrics: StudioMetrics): HttpRoute[] {
  return [
    { method: "GET", path: /^\/healthz$/, handle: (_req, res) => sendJson(res, 200, { status: "ok" }) },
    {
      method: "GET",
      path: /^\/readyz$/,
      async handle(_req, res) {
        const problem = await storage.readiness();
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
