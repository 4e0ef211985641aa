import type { Job } from "../../gen/studio/v1/job_pb.js";
import { h } from "./dom.js";
import { PHASE_NAMES, STATUS_NAMES, progressOf } from "./format.js";

/** A status badge whose text is the status name (colour is never the only cue). */
export function statusBadge(job: Job): HTMLElement {
  const name = STATUS_NAMES[job.status] ?? `status ${job.status}`;
  return h("span", { class: `badge status-${name}`, "data-status": name }, name);
}

/** Why a queued job waits, as the studio says it (nothing for other jobs). */
export function waitNote(job: Job): HTMLElement | null {
  return job.waiting?.message ? h("div", { class: "muted wait", "data-wait": String(job.waiting.reason) }, job.waiting.message) : null;
}

/**
 * A job's progress: a labelled <progress> (bytes while downloading, then steps),
 * indeterminate when the total is unknown; empty for jobs that are not running.
 */
export function progressCell(job: Job): HTMLElement {
  const p = progressOf(job);
  const box = h("div", { class: "progress", "data-job-progress": job.id });
  if (!p) {
    if (job.progress && job.progress.phase && job.status === 3) box.append(PHASE_NAMES[job.progress.phase]);
    return box;
  }
  const bar = h("progress", { "aria-label": `Progress of job ${job.id}`, "aria-valuetext": p.label });
  if (p.max > 0) {
    bar.max = p.max;
    bar.value = p.value;
  }
  box.append(bar, h("span", { class: "progress-label" }, p.label));
  return box;
}
