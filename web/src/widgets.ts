import { JobStatus, type Job } from "../../gen/studio/v1/job_pb.js";
import { jobProgressMeasure, phaseName, progressText, statusName } from "../../contract/job-progress.js";
import { h } from "./dom.js";

/** A status badge whose text is the status name (colour is never the only cue). */
export function statusBadge(job: Job): HTMLElement {
  const name = statusName(job.status);
  return h("span", { class: `badge status-${name}`, "data-status": name }, name);
}

/** Why a queued job waits, as the studio says it (nothing for other jobs). */
export function waitNote(job: Job): HTMLElement | null {
  return job.waiting?.message ? h("div", { class: "muted wait", "data-wait": String(job.waiting.reason) }, job.waiting.message) : null;
}

/**
 * A job's progress: a labelled <progress> (bytes while downloading, then steps),
 * indeterminate when the total is unknown or nothing is counted; empty for jobs that are not running.
 */
export function progressCell(job: Job): HTMLElement {
  const box = h("div", { class: "progress", "data-job-progress": job.id });
  const p = job.progress;
  if (!p || job.status !== JobStatus.RUNNING) return box;
  const phase = p.phase ? phaseName(p.phase) : "running";
  const m = jobProgressMeasure(job);
  const label = m ? `${phase} ${progressText(m, p.rate)}` : phase;
  const bar = h("progress", { "aria-label": `Progress of job ${job.id}`, "aria-valuetext": label });
  if (m && m.total > 0) {
    bar.max = m.total;
    bar.value = m.done;
  }
  box.append(bar, h("span", { class: "progress-label" }, label));
  return box;
}
