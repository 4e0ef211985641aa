import { JobPhase, type JobProgress } from "../../gen/studio/v1/job_pb.js";
import { phaseName } from "../../contract/job-progress.js";
import type { JobOutcome, JobView } from "../runtime/ports.js";
import type { Logger } from "./logger.js";

/**
 * Job progress as structured log lines, for a worker whose output is collected rather than
 * watched: one line per phase change and at most one per job per interval within a phase.
 */
export class LogView implements JobView {
  private readonly last = new Map<string, { phase: JobPhase; at: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  started(jobId: string, model: string, engine: string): void {
    this.logger.info({ jobId, model, engine }, "job started");
  }

  progress(jobId: string, p: JobProgress): void {
    const prev = this.last.get(jobId);
    const t = this.now();
    if (prev && prev.phase === p.phase && t - prev.at < this.intervalMs) return;
    this.last.set(jobId, { phase: p.phase, at: t });
    this.logger.info(
      {
        jobId,
        phase: phaseName(p.phase),
        ...(p.bytesTotal > 0n || p.bytesDone > 0n ? { bytesDone: Number(p.bytesDone), bytesTotal: Number(p.bytesTotal) } : {}),
        ...(p.steps > 0 ? { step: p.step, steps: p.steps } : {}),
        ...(p.rate > 0 ? { rate: Math.round(p.rate * 100) / 100 } : {}),
        ...(p.message ? { detail: p.message } : {}),
      },
      "job progress",
    );
  }

  finished(jobId: string, outcome: JobOutcome, message?: string): void {
    this.last.delete(jobId);
    const level = outcome === "succeeded" ? "info" : "warn";
    this.logger[level]({ jobId, outcome, ...(message ? { detail: message } : {}) }, "job finished");
  }
}
