import { toJson } from "@bufbuild/protobuf";
import { JobSchema, JobStatus, type Job } from "../gen/studio/v1/job_pb.js";
import { jobProgressMeasure, phaseName, progressText, statusName } from "../contract/job-progress.js";
import type { Output } from "./output.js";

const BAR_WIDTH = 24;

/** "[#########---------------]  37%" for done/total; an empty bar when total is unknown. */
export function progressBar(done: number, total: number): string {
  if (!(total > 0)) return `[${" ".repeat(BAR_WIDTH)}]     `;
  const ratio = Math.min(1, Math.max(0, done / total));
  const filled = Math.round(ratio * BAR_WIDTH);
  return `[${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}] ${String(Math.round(ratio * 100)).padStart(3)}%`;
}

/** One line about a job: id, status, phase, a bar (the contract's progress rule: bytes, then steps) and its worker. */
export function jobLine(job: Job): string {
  const status = statusName(job.status);
  const p = job.progress;
  let detail = "";
  if (job.status === JobStatus.RUNNING && p) {
    const m = jobProgressMeasure(job);
    detail = m ? `${phaseName(p.phase).padEnd(11)} ${progressBar(m.done, m.total)} ${progressText(m, p.rate)}` : phaseName(p.phase);
  } else if (job.status === JobStatus.SUCCEEDED) {
    detail = `${progressBar(1, 1)} ${job.outputs.length} output(s)`;
  } else if (job.status === JobStatus.FAILED) {
    detail = job.error;
  } else if (job.status === JobStatus.QUEUED && job.waiting) {
    detail = `waiting: ${job.waiting.message}`;
  }
  const worker = job.workerName ? ` @${job.workerName}` : "";
  return `${job.id}  ${job.model}  ${status.padEnd(9)} ${detail}${worker}`.trimEnd();
}

/**
 * Shows job changes: on a terminal one live line per job, redrawn in place (ANSI
 * cursor moves); otherwise one JSON document per change, for scripts and pipes.
 */
export class WatchView {
  readonly #o: Output;
  readonly #live: boolean;
  readonly #order: string[] = [];
  readonly #lines = new Map<string, string>();
  #drawn = 0;

  constructor(o: Output, { json }: { json: boolean }) {
    this.#o = o;
    this.#live = o.isTTY && !json;
  }

  update(job: Job): void {
    if (!this.#live) {
      this.#o.out(`${JSON.stringify(toJson(JobSchema, job))}\n`);
      return;
    }
    if (!this.#lines.has(job.id)) this.#order.push(job.id);
    this.#lines.set(job.id, jobLine(job));
    this.#redraw();
  }

  #redraw() {
    const up = this.#drawn > 0 ? `\x1b[${this.#drawn}F` : "";
    const body = this.#order.map((id) => `\x1b[2K${this.#lines.get(id)}`).join("\n");
    this.#o.out(`${up}${body}\n`);
    this.#drawn = this.#order.length;
  }
}
