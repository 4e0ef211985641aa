import type { StreamedText } from "../../gen/studio/v1/job_pb.js";

/**
 * Where text jobs' streamed output is kept with the job while it runs (and after it failed or
 * was cancelled): one row per job, the latest attempt's text so far. SQLite
 * (sqlite-text-store.ts) and PostgreSQL (pg-text-store.ts) implement it and run one suite.
 */
export interface TextStore {
  /** Writes the job's text so far; a write for an older attempt than the stored one changes nothing. */
  save(jobId: string, text: StreamedText): Promise<void>;
  /** The job's kept text, or undefined. */
  load(jobId: string): Promise<StreamedText | undefined>;
  /** Forgets the job's text (its output holds the whole of it). */
  remove(jobId: string): Promise<void>;
}
