import { Code, ConnectError } from "@connectrpc/connect";

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

const CODES: Record<DispatchErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  failed_precondition: Code.FailedPrecondition,
  not_found: Code.NotFound,
  resource_exhausted: Code.ResourceExhausted,
  permission_denied: Code.PermissionDenied,
};

/** The ConnectError for a domain error with a code (dispatch or outputs); other errors pass through. */
export function toConnectError(err: unknown): unknown {
  if (err instanceof ConnectError) return err;
  if (err instanceof Error && "code" in err && typeof err.code === "string" && err.code in CODES)
    return new ConnectError(err.message, CODES[err.code as DispatchErrorCode]);
  return err;
}

/** The Receipt code name and message for a failure, or undefined for an error that is not a refusal. */
export function refusalOf(err: unknown): { code: string; message: string } | undefined {
  if (err instanceof Error && "code" in err && typeof err.code === "string" && err.code in CODES)
    return { code: err.code, message: err.message };
  return undefined;
}
