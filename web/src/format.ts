import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { JobPhase, JobStatus, type Job } from "../../gen/studio/v1/job_pb.js";

/** Lower-case status names as the filters and badges show them. */
export const STATUS_NAMES: Record<JobStatus, string> = {
  [JobStatus.UNSPECIFIED]: "unspecified",
  [JobStatus.QUEUED]: "queued",
  [JobStatus.OFFERED]: "offered",
  [JobStatus.RUNNING]: "running",
  [JobStatus.SUCCEEDED]: "succeeded",
  [JobStatus.FAILED]: "failed",
  [JobStatus.CANCELLED]: "cancelled",
};

export const PHASE_NAMES: Record<JobPhase, string> = {
  [JobPhase.UNSPECIFIED]: "",
  [JobPhase.DOWNLOADING]: "downloading",
  [JobPhase.LOADING]: "loading",
  [JobPhase.RUNNING]: "running",
  [JobPhase.UPLOADING]: "uploading",
};

/** The statuses a job can be listed under, in life order. */
export const LISTED_STATUSES = [
  JobStatus.QUEUED,
  JobStatus.OFFERED,
  JobStatus.RUNNING,
  JobStatus.SUCCEEDED,
  JobStatus.FAILED,
  JobStatus.CANCELLED,
];

export function isActive(status: JobStatus): boolean {
  return status === JobStatus.QUEUED || status === JobStatus.OFFERED || status === JobStatus.RUNNING;
}

/** 1536 → "1.5 KiB". */
export function formatBytes(n: bigint | number | undefined): string {
  if (n === undefined) return "—";
  let v = Number(n);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** A timestamp in the reader's locale, or "—". */
export function formatTime(ts: Timestamp | undefined): string {
  if (!ts || (ts.seconds === 0n && ts.nanos === 0)) return "—";
  return timestampDate(ts).toLocaleString();
}

/** "12 s ago" style age of a timestamp against now. */
export function formatAge(ts: Timestamp | undefined, now = Date.now()): string {
  if (!ts || ts.seconds === 0n) return "never";
  const s = Math.max(0, Math.round((now - timestampDate(ts).getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

/** Milliseconds since the epoch of a timestamp (0 when unset), for ordering. */
export function millis(ts: Timestamp | undefined): number {
  return ts ? timestampDate(ts).getTime() : 0;
}

/** A job's progress as a bar: bytes while downloading, then steps; undefined when there is nothing to show. */
export interface ProgressView {
  value: number;
  max: number;
  label: string;
}

/**
 * Download progress uses the worker's bytes_total (Content-Length), else the sum
 * of approx_bytes in the job's model source; after that the engine's steps.
 */
export function progressOf(job: Job): ProgressView | undefined {
  const p = job.progress;
  if (!p || job.status !== JobStatus.RUNNING) return undefined;
  const phase = PHASE_NAMES[p.phase] || "running";
  if (p.phase === JobPhase.DOWNLOADING) {
    const approx = (job.modelSource?.files ?? []).reduce((sum, f) => sum + (f.approxBytes ?? 0n), 0n);
    const total = p.bytesTotal > 0n ? p.bytesTotal : approx;
    if (total > 0n) {
      const done = p.bytesDone > total ? total : p.bytesDone;
      return {
        value: Number(done),
        max: Number(total),
        label: `${phase} ${formatBytes(done)} of ${formatBytes(total)}`,
      };
    }
    return { value: 0, max: 0, label: `${phase} ${formatBytes(p.bytesDone)}` };
  }
  if (p.steps > 0) {
    return { value: Math.min(p.step, p.steps), max: p.steps, label: `${phase} step ${p.step} of ${p.steps}` };
  }
  return { value: 0, max: 0, label: phase };
}
