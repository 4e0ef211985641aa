import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { JOB_STATUS_NAMES } from "../jobs/job-row.js";
import type { QueueStats } from "../storage/storage.js";

/** What dispatch knows about one connected worker, for the worker gauges. */
export interface WorkerLoad {
  slots: number;
  slotsInUse: number;
}

const DURATION_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

/**
 * The studio's Prometheus metrics, in a registry of their own (never prom-client's
 * global one, so two studios in one process do not share counters). Queue gauges are
 * read from the database on each scrape; counters and histograms are fed by
 * job events (ops/job-metrics.ts) and by dispatch, which calls them directly.
 */
export class StudioMetrics {
  readonly registry = new Registry();
  /** Offers sent to workers. */
  readonly offers: Counter;
  /** Leases that ran out without a heartbeat. */
  readonly leaseExpiries: Counter;
  /** Jobs put back in the queue after a failed or lost attempt. */
  readonly retries: Counter;
  /** Seconds from creation to a final status, by status. */
  readonly jobDuration: Histogram<"status">;
  /** Seconds a job spent in each phase (downloading, loading, running, uploading), as workers report. */
  readonly phaseDuration: Histogram<"phase">;
  /** Bytes of outputs stored. */
  readonly outputBytes: Counter;
  /** Model bytes workers reported downloading. */
  readonly downloadBytes: Counter;
  /** Connections the listener closed itself: a deadline passed, or the peer address was at its cap. */
  readonly connectionsClosed: Counter<"reason">;
  #workers: () => WorkerLoad[] = () => [];

  constructor(stats: QueueStats, now: () => number) {
    const registers = [this.registry];
    const p = "studio_";
    new Gauge({
      name: `${p}jobs`,
      help: "Jobs by status, as stored",
      labelNames: ["status"],
      registers,
      async collect() {
        const rows = await stats.jobCounts();
        this.reset();
        for (const s of JOB_STATUS_NAMES) this.set({ status: s }, 0);
        for (const r of rows) this.set({ status: r.status }, r.n);
      },
    });
    const queued = () => stats.queuedByModel();
    new Gauge({
      name: `${p}queue_depth`,
      help: "Queued jobs per model",
      labelNames: ["model"],
      registers,
      async collect() {
        const rows = await queued();
        this.reset();
        for (const r of rows) this.set({ model: r.model }, r.n);
      },
    });
    new Gauge({
      name: `${p}queue_oldest_age_seconds`,
      help: "Age of the oldest queued job per model",
      labelNames: ["model"],
      registers,
      async collect() {
        const rows = await queued();
        this.reset();
        const t = now();
        for (const r of rows) this.set({ model: r.model }, Math.max(0, (t - r.oldest) / 1000));
      },
    });
    const workers = () => this.#workers();
    new Gauge({
      name: `${p}workers_connected`,
      help: "Workers with an open session",
      registers,
      collect() {
        this.set(workers().length);
      },
    });
    new Gauge({
      name: `${p}worker_slots_free`,
      help: "Free job slots across connected workers",
      registers,
      collect() {
        this.set(workers().reduce((sum, w) => sum + Math.max(0, w.slots - w.slotsInUse), 0));
      },
    });
    this.offers = new Counter({ name: `${p}offers_total`, help: "Offers sent to workers", registers });
    this.leaseExpiries = new Counter({ name: `${p}lease_expiries_total`, help: "Leases that expired", registers });
    this.retries = new Counter({ name: `${p}job_retries_total`, help: "Jobs requeued after a failed or lost attempt", registers });
    this.jobDuration = new Histogram({
      name: `${p}job_duration_seconds`,
      help: "Seconds from creation to a final status",
      labelNames: ["status"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.phaseDuration = new Histogram({
      name: `${p}job_phase_duration_seconds`,
      help: "Seconds a job spent in a phase, as its worker reported",
      labelNames: ["phase"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.outputBytes = new Counter({ name: `${p}output_bytes_total`, help: "Bytes of job outputs stored", registers });
    this.downloadBytes = new Counter({
      name: `${p}worker_download_bytes_total`,
      help: "Model bytes workers reported downloading",
      registers,
    });
    this.connectionsClosed = new Counter({
      name: `${p}connections_closed_total`,
      help: "Connections the studio closed itself: headers (no request in time), idle, max-connections-per-address",
      labelNames: ["reason"],
      registers,
    });
  }

  /** Dispatch tells the metrics where its connected workers are listed (read on each scrape). */
  useWorkers(list: () => WorkerLoad[]): void {
    this.#workers = list;
  }

  /** The Prometheus text exposition. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
