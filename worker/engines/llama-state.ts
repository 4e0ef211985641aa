/**
 * The life of one llama-server child process:
 * - stopped: no process. A job moves it to starting.
 * - starting: spawned, waiting for GET /health to answer 200. Health moves it to ready; an early exit
 *   to stopped; a health timeout, an idle stop or close() to stopping.
 * - ready: serving jobs. Idle stop or close() moves it to stopping; the process dying to stopped.
 * - stopping: SIGTERM sent to its group (SIGKILL after a grace period). The process exit moves it to stopped.
 */
export type LlamaState = "stopped" | "starting" | "ready" | "stopping";

/** Every allowed transition; anything else is a bug and raises IllegalTransitionError. */
export const LLAMA_TRANSITIONS: Readonly<Record<LlamaState, readonly LlamaState[]>> = {
  stopped: ["starting"],
  starting: ["ready", "stopping", "stopped"],
  ready: ["stopping", "stopped"],
  stopping: ["stopped"],
};

/** Raised for a transition the table does not allow. */
export class IllegalTransitionError extends Error {
  readonly code = "illegal_transition";
  constructor(readonly from: LlamaState, readonly to: LlamaState) {
    super(`llama-server cannot go from ${from} to ${to}`);
    this.name = "IllegalTransitionError";
  }
}

/** Checks one transition against the table and returns the new state. */
export function nextLlamaState(from: LlamaState, to: LlamaState): LlamaState {
  if (!LLAMA_TRANSITIONS[from].includes(to)) throw new IllegalTransitionError(from, to);
  return to;
}
