import { engineName, type EngineName } from "../../contract/names.js";
import type { Job, QueueWait } from "../../gen/studio/v1/job_pb.js";

/**
 * What a queued job's wait depends on: its id, model, engine (wire name; undefined for a legacy row) and
 * the GPU memory it needs (Job.vram; undefined when none is counted).
 */
export interface WaitingJob {
  id: string;
  model: string;
  engine: EngineName | undefined;
  vramBytes?: number;
}

/**
 * Why queued jobs wait (dispatch's WaitReasons implements it): JobService sets Job.waiting on
 * what it returns, and WatchJobs asks again on a slow timer to send a job whose wait changed.
 */
export interface JobWaits {
  /** Sets `waiting` on each QUEUED job (clears it on the others); `fresh: false` takes no new look for a job it does not know. */
  annotate(jobs: readonly Job[], options?: { fresh?: boolean }): Promise<void>;
  /** The wait of one queued job now. */
  explain(job: WaitingJob): Promise<QueueWait>;
}

/** The fields of a Job that its wait depends on. */
export function waitingJobOf(job: Job): WaitingJob {
  return {
    id: job.id,
    model: job.model,
    engine: job.modelSource ? engineName(job.modelSource.engine) : undefined,
    vramBytes: job.vram ? Number(job.vram.bytes) : undefined,
  };
}
