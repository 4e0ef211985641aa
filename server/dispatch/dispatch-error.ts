import { OutputError } from "../outputs/output-error.js";

/** The Connect code names a dispatch problem maps to; also what a Receipt's `code` carries. */
export type DispatchErrorCode =
  | "invalid_argument"
  | "failed_precondition"
  | "not_found"
  | "resource_exhausted"
  | "permission_denied";

/**
 * A refused queue operation: a stale or foreign lease, a bad output, an unknown job.
 * Domain code raises it; the RPC edge turns it into a ConnectError or a Receipt.
 */
export class DispatchError extends Error {
  constructor(
    readonly code: DispatchErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "DispatchError";
  }
}

/** Raised when a message names a lease that is not the job's current one: the fencing refusal. */
export class LeaseLostError extends DispatchError {
  constructor(jobId: string, leaseId: string, why: string) {
    super("failed_precondition", `lease ${JSON.stringify(leaseId)} of job ${JSON.stringify(jobId)} is not current: ${why}`);
    this.name = "LeaseLostError";
  }
}

/**
 * The Receipt code name and message for a refusal (a DispatchError or an OutputError, whose codes
 * are Connect code names), or undefined for an error that is not one. The RPC edge maps the same
 * errors to Connect codes (server/ops/rpc-errors.ts).
 */
export function refusalOf(err: unknown): { code: string; message: string } | undefined {
  return err instanceof DispatchError || err instanceof OutputError ? { code: err.code, message: err.message } : undefined;
}
