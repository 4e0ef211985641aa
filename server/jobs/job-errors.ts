/** What went wrong with a job request, for the RPC edge to map onto a Connect code. */
export type JobErrorCode =
  | "job_not_found"
  | "wrong_state"
  | "model_unavailable"
  | "invalid_request"
  /** An idempotency key already names a job made from a different request. */
  | "idempotency_conflict"
  /** A watcher fell further behind than its buffer allows. */
  | "watch_overflow";

/** A job rule the caller broke. Callers branch on `code`, never on the message. */
export class JobError extends Error {
  constructor(
    readonly code: JobErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "JobError";
  }
}

/** No job has this id. */
export const jobNotFound = (id: string) => new JobError("job_not_found", `job ${JSON.stringify(id)} not found`);

/** The job is not in a state the operation applies to. */
export const wrongState = (id: string, status: string, wanted: string) =>
  new JobError("wrong_state", `job ${JSON.stringify(id)} is ${status}; ${wanted}`);
