/**
 * Why an engine run ended without outputs:
 * - failed: the program reported a failure (sd-cli exit 1, an error event from llama-server);
 * - crashed: the program died from a signal it was not sent by us, or vanished mid-job;
 * - timeout: the job timeout ran out and the process group was killed;
 * - cancelled: the job's signal aborted it;
 * - bad-output: the program claimed success but an output is missing or is not what the task asked for;
 * - no-source: the offer carried no model source (the studio's registry has none for the model);
 * - unavailable: this worker has no engine for the source's engine (the worker declines the offer);
 * - out-of-memory: the program ran out of (GPU) memory: the model needs more than it was counted for;
 * - no-room: the job's GPU cannot hold it even with every idle warm server stopped, so nothing was
 *   started (the worker declines the offer: another GPU, or this one later, may hold it).
 */
export type EngineErrorKind =
  | "failed"
  | "crashed"
  | "timeout"
  | "cancelled"
  | "bad-output"
  | "no-source"
  | "unavailable"
  | "out-of-memory"
  | "no-room";

const RETRYABLE: Record<EngineErrorKind, boolean> = {
  failed: false,
  crashed: true,
  timeout: false,
  cancelled: false,
  "bad-output": false,
  "no-source": false,
  unavailable: true,
  // The same job on the same GPU would run out again: the fix is a larger vramBytes on the model (and RetryJob).
  "out-of-memory": false,
  "no-room": true,
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

/**
 * Lines ggml's backends print when an allocation fails: CUDA ("cudaMalloc failed: out of memory",
 * "CUDA error: out of memory"), ROCm ("hipMalloc failed: out of memory"), Vulkan
 * ("ErrorOutOfDeviceMemory"), and llama.cpp's and the allocator's own ("unable to allocate CUDA0
 * buffer", "failed to allocate CUDA0 buffer of size ...", "failed to allocate buffer for kv cache").
 */
const OUT_OF_MEMORY = /out of memory|ErrorOutOfDeviceMemory|(unable|failed) to allocate (\S+ )?buffer|cudaMalloc failed|hipMalloc failed/i;

/** The first line of an engine's output that says it ran out of memory, if one does. */
export function outOfMemoryLine(output: string): string | undefined {
  return output.split(/\r?\n/).find((line) => OUT_OF_MEMORY.test(line))?.trim();
}
