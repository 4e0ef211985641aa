import type { JobPhase } from "../../gen/studio/v1/job_pb.js";

/** One progress update before it is stamped for the wire. */
export interface ProgressUpdate {
  phase: JobPhase;
  bytesDone?: number;
  bytesTotal?: number;
  step?: number;
  steps?: number;
  rate?: number;
  message?: string;
}

/**
 * Passes at most one update per interval to `emit`, but a new phase at once, and the latest
 * held-back update after the interval (so the last step of a phase is never lost). The studio
 * stores and fans out every progress message, so a chatty engine must not reach it unthrottled.
 */
export class ProgressThrottle {
  private lastAt = -Infinity;
  private lastPhase: JobPhase | undefined;
  private pending: ProgressUpdate | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly emit: (u: ProgressUpdate) => void,
    private readonly intervalMs = 250,
    private readonly now: () => number = Date.now,
  ) {}

  push(update: ProgressUpdate): void {
    const t = this.now();
    if (update.phase !== this.lastPhase || t - this.lastAt >= this.intervalMs) {
      this.clearTimer();
      this.pending = undefined;
      this.fire(update, t);
      return;
    }
    this.pending = update;
    this.timer ??= setTimeout(() => this.flush(), this.intervalMs - (t - this.lastAt));
  }

  /** Sends the held-back update now, if any. */
  flush(): void {
    this.clearTimer();
    const p = this.pending;
    this.pending = undefined;
    if (p) this.fire(p, this.now());
  }

  /** Drops anything held back (the job ended). */
  stop(): void {
    this.clearTimer();
    this.pending = undefined;
  }

  private fire(update: ProgressUpdate, t: number) {
    this.lastAt = t;
    this.lastPhase = update.phase;
    this.emit(update);
  }

  private clearTimer() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
