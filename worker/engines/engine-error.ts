/**
 * Why an engine run ended without outputs:
 * - failed: the program reported a failure (sd-cli exit 1, an error event from llama-server);
 * - crashed: the program died from a signal it was not sent by us, or vanished mid-job;
 * - timeout: the job timeout ran out and the process group was killed;
 * - cancelled: the job's signal aborted it;
 * - bad-output: the program claimed success but an output is missing or is not what the task asked for;
 * - no-source: the offer carried no model source (the studio's registry has none for the model);
 * - unavailable: this worker has no engine for the source's engine (the worker declines the offer).
 */
export type EngineErrorKind = "failed" | "crashed" | "timeout" | "cancelled" | "bad-output" | "no-source" | "unavailable";

const RETRYABLE: Record<EngineErrorKind, boolean> = {
  failed: false,
  crashed: true,
  timeout: false,
  cancelled: false,
  "bad-output": false,
  "no-source": false,
  unavailable: true,
};

/** A typed engine failure; callers branch on `kind`, never on the message. */
export class EngineError extends Error {
  readonly code = "engine_error";
  readonly retryable: boolean;
  constructor(
    readonly kind: EngineErrorKind,
    message: string,
    options: { retryable?: boolean; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "EngineError";
    this.retryable = options.retryable ?? RETRYABLE[kind];
  }
}
