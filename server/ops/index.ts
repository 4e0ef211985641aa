import type { StudioContext, StudioModule } from "../context.js";
import { feedJobMetrics } from "./job-metrics.js";
import { opsRoutes } from "./health.js";
import { grpcHealthRoutes } from "./grpc-health.js";
import { grpcReflectionRoutes } from "./grpc-reflection.js";
import { logJobEvents } from "./job-log.js";
import { createRequestLog } from "./request-log.js";
import { createUnavailableInterceptor, unavailableGate } from "./unavailable.js";
import { StudioMetrics } from "./studio-metrics.js";

export { StudioMetrics, type WorkerLoad } from "./studio-metrics.js";
export { SERVICE_READ_MAX_BYTES, withRequestLimits, limitRouter } from "./request-limits.js";
export { meterDispatch } from "./dispatch-metrics.js";
export { REQUEST_ID_HEADER } from "./request-log.js";

/** The services grpc.health.v1 answers for, besides "" (the whole server). */
const STUDIO_SERVICES = ["studio.v1.RegistryService", "studio.v1.JobService", "studio.v1.WorkerService", "studio.v1.TokenService"];

/** The ops module plus its metrics, which dispatch feeds. */
export interface OpsModule extends StudioModule {
  name: "ops";
  metrics: StudioMetrics;
}

/**
 * Observability: /healthz, /readyz, /metrics (open routes), grpc.health.v1.Health, gRPC server
 * reflection (v1 and v1alpha), the request log
 * interceptor (placed before auth so refused calls are logged too), the
 * job-event feed of the metrics and the job-event log lines.
 */
export function createOpsModule(ctx: StudioContext): OpsModule {
  const requestLog = createRequestLog(ctx.logger.child({ module: "rpc" }));
  const metrics = new StudioMetrics(ctx.storage.stats, ctx.now);
  const unsubscribe: Array<() => void> = [];
  return {
    name: "ops",
    metrics,
    httpRoutes: opsRoutes(ctx.storage, metrics),
    routes: (router) => {
      grpcHealthRoutes(async () => (await ctx.storage.readiness()) === undefined, STUDIO_SERVICES)(router);
      grpcReflectionRoutes()(router);
    },
    interceptors: [requestLog.interceptor, createUnavailableInterceptor()],
    // Inside the log's gate: a call refused because the database is down is logged (and answered) as UNAVAILABLE.
    requestGate: (next) => requestLog.gate(unavailableGate(next)),
    onConnectionRefused: (why) => metrics.connectionsClosed.inc({ reason: why }),
    start() {
      unsubscribe.push(
        feedJobMetrics(ctx.events, (id) => ctx.storage.jobs.get(id), metrics, ctx.now, (err) =>
          ctx.logger.error({ err }, "metrics: a job change could not be observed"),
        ),
        logJobEvents(ctx.events, ctx.logger.child({ module: "jobs" }), ctx.now),
      );
    },
    stop() {
      for (const off of unsubscribe.splice(0)) off();
    },
  };
}
