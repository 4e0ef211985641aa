import type { Task } from "../../gen/studio/v1/job_pb.js";
import type { JobRow, JobStatusName } from "./job-row.js";
import type { ListCursor } from "./list-cursor.js";

/** What CreateJob writes, after validation. */
export interface NewJob {
  model: string;
  task: Task;
  priority: number;
  maxAttempts: number;
  /** Empty or undefined: no key. */
  idempotencyKey?: string;
  /**
   * True when the request's image task had no seed and the studio chose one: a retry under the
   * same idempotency key then matches the stored job whatever seed was chosen for it.
   */
  seedChosen?: boolean;
}

/** Which jobs a list or a watch wants; empty fields match everything. */
export interface JobFilter {
  statuses?: readonly JobStatusName[];
  model?: string;
}

export interface JobPage {
  rows: JobRow[];
  /** Set when more rows follow. */
  next?: ListCursor;
}

/** One create of a batch: the job (as create returns it) or why it was refused. */
export type CreateOutcome = { row: JobRow; created: boolean } | { error: unknown };

/** The job a cancel moved, with the lease it took away (dispatch tells that worker). */
export interface CancelResult {
  row: JobRow;
  previousLeaseWorker: string | null;
  previousLeaseId: string | null;
}

/**
 * The clients' side of the queue's storage: reads and the writes JobService makes.
 * Each write resolves the model against the registry inside its own transaction,
 * is conditional on the state it expects, and publishes a JobChange after commit.
 * Errors are JobErrors. The worker side (claim, lease, complete, requeue) is
 * dispatch's, in its own module. SQLite (sqlite-job-store.ts) and PostgreSQL (pg-job-store.ts)
 * implement it and run the same suite (test/server/job-store-suite.ts).
 */
export interface JobStore {
  get(id: string): Promise<JobRow | undefined>;
  /** Newest first, on (createdAt, id). */
  list(filter: JobFilter, page: { pageSize: number; after?: ListCursor }): Promise<JobPage>;
  /** A new QUEUED job, or the existing one when idempotencyKey matches (created false). */
  create(input: NewJob): Promise<{ row: JobRow; created: boolean }>;
  /**
   * Several creates committed together, each as create would do it (in order, a later one seeing an
   * earlier one's idempotency key), each refused alone: one outcome per input, in input order.
   */
  createBatch(inputs: readonly NewJob[]): Promise<CreateOutcome[]>;
  /** A new QUEUED job with jobId's task under model; the original is untouched. */
  promote(jobId: string, model: string, priority: number): Promise<JobRow>;
  /** FAILED or CANCELLED back to QUEUED with attempts 0, the model resolved again. */
  retry(jobId: string): Promise<JobRow>;
  /** QUEUED, OFFERED or RUNNING to CANCELLED, the lease cleared. */
  cancel(jobId: string): Promise<CancelResult>;
}
