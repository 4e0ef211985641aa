import type { JobChange, JobEvents, JobFacts } from "../events/job-events.js";
import { isFinalStatusName } from "../jobs/job-row.js";
import type { StudioMetrics } from "./studio-metrics.js";

/** Where a running job was at its last stored progress, to time phases and count downloaded bytes. */
interface PhaseState {
  phase: string;
  since: number;
  bytesDone: number;
}

/** The phase and bytesDone of stored progress JSON (protobuf JSON), or undefined. */
export function storedPhase(progress: string | null): { phase: string; bytesDone: number } | undefined {
  if (!progress) return undefined;
  try {
    const p = JSON.parse(progress) as { phase?: unknown; bytesDone?: unknown };
    if (typeof p.phase !== "string") return undefined;
    const bytesDone = Number(p.bytesDone ?? 0);
    return { phase: p.phase.replace(/^JOB_PHASE_/, "").toLowerCase(), bytesDone: Number.isFinite(bytesDone) ? bytesDone : 0 };
  } catch {
    return undefined;
  }
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
 * no metric calls for them: an OFFERED change is an offer; a RUNNING change carries
 * the stored (throttled) progress, whose phase changes time the phases and whose
 * bytesDone while downloading adds to the download bytes; a QUEUED change of a job
 * that already used attempts is a retry; a final status observes the job's duration,
 * and SUCCEEDED adds its output bytes. The facts come with the change (JobChange.job);
 * only a change without them costs a query. Changes that
 * another replica made (JobChange.remote) are that replica's to count. Returns the unsubscribe function.
 */
export function feedJobMetrics(
  events: JobEvents,
  /** Reads a job's facts for a change that came without them. */
  readFacts: (jobId: string) => Promise<JobFacts | undefined>,
  metrics: StudioMetrics,
  now: () => number,
  onError: (err: unknown) => void = () => {},
): () => void {
  const phases = new Map<string, PhaseState>();
  const endPhase = (jobId: string, at: number) => {
    const state = phases.get(jobId);
    if (state) metrics.phaseDuration.observe({ phase: state.phase }, Math.max(0, (at - state.since) / 1000));
    phases.delete(jobId);
  };
  // A listener that threw would stop the bus for every later listener (watchers, dispatch): never let it.
  const safe = (change: JobChange) => {
    // Another replica's change is counted by that replica's metrics, never twice.
    if (change.remote) return;
    try {
      if (change.status === "OFFERED") metrics.offers.inc();
      else if (change.job) observe(change, change.job);
      else
        void readFacts(change.jobId).then(
          (job) => job && observe(change, job),
          (err: unknown) => onError(err),
        );
    } catch (err) {
      onError(err);
    }
  };
  const observe = (change: JobChange, job: JobFacts) => {
    if (change.status === "OFFERED") return;
    if (change.status === "RUNNING") {
      const at = storedPhase(job.progress);
      if (!at) return;
      const state = phases.get(change.jobId);
      if (at.phase === "downloading") {
        const before = state?.phase === "downloading" ? state.bytesDone : 0;
        if (at.bytesDone > before) metrics.downloadBytes.inc(at.bytesDone - before);
      }
      if (state?.phase === at.phase) state.bytesDone = at.bytesDone;
      else {
        if (state) endPhase(change.jobId, now());
        phases.set(change.jobId, { phase: at.phase, since: now(), bytesDone: at.bytesDone });
      }
      return;
    }
    if (change.status !== "QUEUED" && !isFinalStatusName(change.status)) return;
    endPhase(change.jobId, now());
    if (change.status === "QUEUED") {
      if (job.attempts > 0) metrics.retries.inc();
      return;
    }
    const end = job.finishedAt ?? now();
    metrics.jobDuration.observe({ status: change.status }, Math.max(0, (end - job.createdAt) / 1000));
    if (change.status === "SUCCEEDED") metrics.outputBytes.inc(storedOutputBytes(job.outputs));
  };
  return events.subscribe(safe);
}
