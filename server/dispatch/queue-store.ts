import type { JobRow } from "../jobs/job-row.js";

/** A lease named by a worker: the job and its fencing token. */
export interface LeaseRef {
  jobId: string;
  leaseId: string;
}

/** What a worker can take: its engines (wire names) and the jobs it recently declined. */
export interface ClaimFilter {
  /** The name recorded as the lease holder (Job.worker_name). */
  workerName: string;
  engines: readonly string[];
  excludeJobIds?: readonly string[];
  /**
   * On a worker with GPUs: the most GPU memory a claimed job may need (jobs that count none always
   * qualify). Unset: no bound (a CPU-only worker).
   */
  maxVramBytes?: number;
  /** Models whose queued jobs are held (disabled after they were queued). */
  excludeModels?: readonly string[];
  /** Claim exactly this job (placement chose it), still only if it is QUEUED and matches. */
  jobId?: string;
}

/** The claim a complete makes, in its own transaction, for the slot it frees. */
export interface NextClaim {
  filter: ClaimFilter;
  ttlMs: number;
}

/** A queued job as placement sees it. */
export interface QueuedJob {
  id: string;
  model: string;
  engine: string | null;
  modelSource: string | null;
  /** What the job needs of a GPU's memory (the column claims filter on); null when none is counted. */
  vramBytes: number | null;
}

/** A lease the reaper took back: the job went back to the queue or failed for good. */
export interface ExpiredLease {
  row: JobRow;
  leaseId: string;
  leaseWorker: string | null;
}

/**
 * Most leases one renew or keep is given (one heartbeat, hello or poll call may name); callers refuse
 * or cut a longer list before the store: more is a client bug, not a reason to scan the table.
 */
export const MAX_LEASES_PER_CALL = 1024;

/** Renewal of a worker's leases. */
export interface RenewResult {
  renewed: string[];
  lost: string[];
  expiresAt: number;
}

/**
 * The queue's storage: every operation one transaction, every state change
 * conditional on the status and lease it expects, so that two workers, a late
 * message or the reaper can never both win. SQLite implements it today
 * (server/dispatch/sqlite); a PostgreSQL store can implement the same interface
 * and run the same tests (test/dispatch/queue-store.test.ts).
 *
 * Lease-taking methods raise LeaseLostError (failed_precondition) when the lease
 * is not current: wrong id, cleared by cancel, expired, or the job moved on.
 */
export interface QueueStore {
  /** The queue head in claim order (priority DESC, createdAt ASC). */
  peekQueued(limit: number): Promise<QueuedJob[]>;
  /** QUEUED → OFFERED with a fresh lease for the next job the filter allows, counting the attempt. */
  claim(filter: ClaimFilter, now: number, ttlMs: number): Promise<JobRow | undefined>;
  /** OFFERED → RUNNING (RUNNING stays RUNNING), renewing the lease. */
  accept(lease: LeaseRef, now: number, ttlMs: number): Promise<JobRow>;
  /** OFFERED/RUNNING → QUEUED without counting the attempt. */
  decline(lease: LeaseRef, now: number): Promise<JobRow>;
  /** Stores progress (protobuf JSON); the first progress moves OFFERED → RUNNING. */
  saveProgress(lease: LeaseRef, progressJson: string, now: number): Promise<JobRow>;
  /** Extends the listed leases that are current (and, given a holder, held by it). */
  renew(leaseIds: readonly string[], now: number, ttlMs: number, holder?: string): Promise<RenewResult>;
  /** After a reconnect: the listed current leases move to `holder` and are renewed; the rest are lost. */
  keep(leaseIds: readonly string[], holder: string, now: number, ttlMs: number): Promise<{ kept: JobRow[]; lost: string[] }>;
  /** The job's row when the lease is current; LeaseLostError otherwise. */
  current(lease: LeaseRef, now: number): Promise<JobRow>;
  /** OFFERED/RUNNING → SUCCEEDED with its outputs, exactly once. */
  complete(lease: LeaseRef, outputsJson: string, now: number): Promise<JobRow>;
  /**
   * complete, then, only if it succeeded, claim as `next` says, in one transaction: a streaming
   * worker's next job is leased with the commit of its last one. A refused complete claims nothing.
   */
  completeAndClaim(lease: LeaseRef, outputsJson: string, now: number, next: NextClaim): Promise<{ row: JobRow; next: JobRow | undefined }>;
  /** Retryable and attempts left: → QUEUED; else → FAILED with the error. */
  fail(lease: LeaseRef, error: string, retryable: boolean, now: number): Promise<JobRow>;
  /** Takes back every lease past its expiry: → QUEUED, or FAILED after max attempts naming the lost worker. */
  expire(now: number): Promise<ExpiredLease[]>;
  get(jobId: string): Promise<JobRow | undefined>;
}
