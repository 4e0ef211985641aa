import { JobPhase, JobStatus, type Job, type JobProgress } from "../gen/studio/v1/job_pb.js";
import type { ModelSource } from "../gen/studio/v1/model_pb.js";
import { formatBytes } from "./byte-size.js";

/** The statuses a job can be listed under, in life order. */
export const LISTED_STATUSES: readonly JobStatus[] = [
  JobStatus.QUEUED,
  JobStatus.OFFERED,
  JobStatus.RUNNING,
  JobStatus.SUCCEEDED,
  JobStatus.FAILED,
  JobStatus.CANCELLED,
];

/** A job status's lower-case name, as filters, badges and the CLI write it: JobStatus.QUEUED → "queued". */
export function statusName(status: JobStatus): string {
  return JobStatus[status]?.toLowerCase() ?? `status ${status}`;
}

/** The status a lower-case name (any case) stands for, among the listed ones. */
export function statusFromName(name: string): JobStatus | undefined {
  return LISTED_STATUSES.find((s) => statusName(s) === name.toLowerCase());
}

/** A job phase's lower-case name: JobPhase.DOWNLOADING → "downloading". */
export function phaseName(phase: JobPhase): string {
  return JobPhase[phase]?.toLowerCase() ?? `phase ${phase}`;
}

/** Statuses a job does not leave on its own. */
export function isFinal(status: JobStatus): boolean {
  return status === JobStatus.SUCCEEDED || status === JobStatus.FAILED || status === JobStatus.CANCELLED;
}

/** Queued, offered or running: a job that still changes. */
export function isActive(status: JobStatus): boolean {
  return status === JobStatus.QUEUED || status === JobStatus.OFFERED || status === JobStatus.RUNNING;
}

/** What a progress bar measures: bytes while files move, engine steps while running. A total of 0 is unknown. */
export interface ProgressMeasure {
  unit: "bytes" | "steps";
  done: number;
  total: number;
}

/** The bytes a source's files add up to by the registry's estimates (approxBytes); 0 when none is given. */
export function approxSourceBytes(source: ModelSource | undefined): bigint {
  return (source?.files ?? []).reduce((sum, f) => sum + (f.approxBytes ?? 0n), 0n);
}

/**
 * The measure of one progress report, the rule every bar follows (web page, CLI, worker): bytes while
 * downloading or uploading, the download's total taken from the worker (Content-Length) or else from
 * `approxBytes` (the source's estimate) and never passed; steps once the engine counts them; undefined
 * when there is nothing to count.
 */
export function progressMeasure(p: JobProgress, approxBytes = 0n): ProgressMeasure | undefined {
  if (p.phase === JobPhase.DOWNLOADING || p.phase === JobPhase.UPLOADING) {
    const total = p.bytesTotal > 0n ? p.bytesTotal : p.phase === JobPhase.DOWNLOADING ? approxBytes : 0n;
    const done = total > 0n && p.bytesDone > total ? total : p.bytesDone;
    return { unit: "bytes", done: Number(done), total: Number(total) };
  }
  if (p.steps > 0) return { unit: "steps", done: Math.min(p.step, p.steps), total: p.steps };
  return undefined;
}

/** A job's measure while it runs, its download total falling back to its source's approxBytes. */
export function jobProgressMeasure(job: Job): ProgressMeasure | undefined {
  if (!job.progress || job.status !== JobStatus.RUNNING) return undefined;
  return progressMeasure(job.progress, approxSourceBytes(job.modelSource));
}

/** "512 B of 2.0 KiB", "12 MiB" (total unknown), "step 3 of 8"; with the report's rate when it has one. */
export function progressText(m: ProgressMeasure, rate = 0): string {
  if (m.unit === "bytes") {
    const amount = m.total > 0 ? `${formatBytes(m.done)} of ${formatBytes(m.total)}` : formatBytes(m.done);
    return rate > 0 ? `${amount}, ${formatBytes(rate)}/s` : amount;
  }
  const steps = `step ${m.done} of ${m.total}`;
  if (!(rate > 0)) return steps;
  return `${steps}, ${rate >= 1 ? `${rate.toFixed(2)} it/s` : `${(1 / rate).toFixed(2)} s/it`}`;
}
