import type { StudioDb } from "../db/open.js";
import type { JobEvents } from "../events/job-events.js";
import type { StudioMetrics } from "./studio-metrics.js";

const FINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

interface JobFacts {
  attempts: number;
  createdAt: number;
  finishedAt: number | null;
  outputs: string;
}

/** Sum of sizeBytes in a stored outputs column (protobuf JSON; uint64 may be a string); 0 when unreadable. */
export function storedOutputBytes(outputs: string): number {
  try {
    const list: unknown = JSON.parse(outputs);
    if (!Array.isArray(list)) return 0;
    return list.reduce((sum: number, o: unknown) => {
      const n = Number((o as { sizeBytes?: unknown } | null)?.sizeBytes ?? 0);
      return sum + (Number.isFinite(n) && n > 0 ? n : 0);
    }, 0);
  } catch {
    return 0;
  }
}

/**
 * Feeds the event-driven metrics from the job bus, so that jobs and dispatch need
 * no metric calls for them: an OFFERED change is an offer; a QUEUED change of a job
 * that already used attempts is a retry; a final status observes the job's duration,
 * and SUCCEEDED adds its output bytes. Returns the unsubscribe function.
 */
export function feedJobMetrics(events: JobEvents, db: StudioDb, metrics: StudioMetrics, now: () => number): () => void {
  const facts = db.sqlite.query<JobFacts, [string]>(
    "SELECT attempts, createdAt, finishedAt, outputs FROM graphicsJobs WHERE id = ?",
  );
  return events.subscribe((change) => {
    if (change.status === "OFFERED") {
      metrics.offers.inc();
      return;
    }
    if (change.status !== "QUEUED" && !FINAL.has(change.status)) return;
    const job = facts.get(change.jobId);
    if (!job) return;
    if (change.status === "QUEUED") {
      if (job.attempts > 0) metrics.retries.inc();
      return;
    }
    const end = job.finishedAt ?? now();
    metrics.jobDuration.observe({ status: change.status }, Math.max(0, (end - job.createdAt) / 1000));
    if (change.status === "SUCCEEDED") metrics.outputBytes.inc(storedOutputBytes(job.outputs));
  });
}
