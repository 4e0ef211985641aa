import type { ExpiredLease } from "../dispatch/queue-store.js";
import type { StudioMetrics } from "./studio-metrics.js";

/** The parts of the dispatch module the metrics read (structural, so ops stays independent of dispatch's wiring). */
export interface MeteredDispatch {
  registry: { all(): Array<{ slots: number; leases: { size: number } }> };
  reaper: { runOnce(): Promise<ExpiredLease[]> };
}

/**
 * Connects the dispatch-only metrics: the worker gauges read the worker registry
 * on each scrape, and every reaper pass adds the leases it expired. The reaper is
 * decorated in place (its timer and tests call the same runOnce), which keeps
 * dispatch free of metric calls.
 */
export function meterDispatch(metrics: StudioMetrics, dispatch: MeteredDispatch): void {
  metrics.useWorkers(() => dispatch.registry.all().map((w) => ({ slots: w.slots, slotsInUse: w.leases.size })));
  const reaper = dispatch.reaper;
  const runOnce = reaper.runOnce.bind(reaper);
  reaper.runOnce = async function meteredRunOnce() {
    const expired = await runOnce();
    if (expired.length > 0) metrics.leaseExpiries.inc(expired.length);
    return expired;
  };
}
