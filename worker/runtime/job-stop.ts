/**
 * Why a job's AbortController fired:
 * - cancelled: the studio sent a cancel order (the job is CANCELLED there; send nothing more);
 * - lease-lost: welcome after a reconnect listed the lease as lost (the job is someone else's now);
 * - refused: a receipt said the studio no longer takes this lease;
 * - shutdown: the worker stops before the job could finish (report a retryable failure).
 */
export type JobStopKind = "cancelled" | "lease-lost" | "refused" | "shutdown";

/** The abort reason the runtime gives a job's signal; the runner branches on `kind`. */
export class JobStop extends Error {
  readonly code = "job_stop";
  constructor(
    readonly kind: JobStopKind,
    message: string,
  ) {
    super(message);
    this.name = "JobStop";
  }

  /** True when the studio must still hear from us (only a shutdown leaves the job ours). */
  get reportable(): boolean {
    return this.kind === "shutdown";
  }
}

/** The JobStop behind an aborted signal, if that is why it aborted. */
export function jobStopOf(signal: AbortSignal): JobStop | undefined {
  return signal.aborted && signal.reason instanceof JobStop ? signal.reason : undefined;
}
