import { Code, ConnectError } from "@connectrpc/connect";
import { JobError, type JobErrorCode } from "./job-errors.js";

const CODES: Record<JobErrorCode, Code> = {
  job_not_found: Code.NotFound,
  wrong_state: Code.FailedPrecondition,
  model_unavailable: Code.InvalidArgument,
  invalid_request: Code.InvalidArgument,
  idempotency_conflict: Code.AlreadyExists,
  watch_overflow: Code.ResourceExhausted,
};

/** The Connect error for a job domain error; anything else is passed through unchanged. */
export function jobConnectError(err: unknown): unknown {
  return err instanceof JobError ? new ConnectError(err.message, CODES[err.code]) : err;
}

/** Runs fn, turning job domain errors into Connect errors at the RPC edge. */
export async function atJobEdge<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw jobConnectError(err);
  }
}
