/** Options of the progress throttle. */
export interface ProgressThrottleOptions {
  /** At most one write per job per this many milliseconds (within a phase). */
  intervalMs?: number;
  /** The clock, in milliseconds; tests pass their own. */
  now?: () => number;
}

interface Slot {
  lastWrite: number;
  /** The phase of the last write (undefined when the caller names none). */
  phase?: unknown;
  pending?: () => Promise<void>;
  timer?: ReturnType<typeof setTimeout>;
}

/**
 * Bounds how often a job's progress goes on, the one rule at both ends: the worker sending its
 * engine's reports to the studio, and the studio writing and publishing them. The first report is
 * written at once (on the studio it moves the job to RUNNING), and so is every change of phase
 * (downloading, loading, running...: a short phase must not vanish behind the next one, or before
 * the job ends and drops what is pending); later reports of a phase at most every intervalMs, the
 * last report of a burst written when its window ends, or at once by flush (the job is ending).
 */
export class ProgressThrottle {
  readonly intervalMs: number;
  readonly #now: () => number;
  readonly #slots = new Map<string, Slot>();

  constructor({ intervalMs = 250, now = () => performance.now() }: ProgressThrottleOptions = {}) {
    if (!(intervalMs >= 0)) throw new RangeError(`intervalMs must be >= 0 (got ${intervalMs})`);
    this.intervalMs = intervalMs;
    this.#now = now;
  }

  /** Writes now, or keeps `write` as the job's pending write; returns the immediate write's promise. */
  submit(jobId: string, write: () => Promise<void>, phase?: unknown): Promise<void> {
    const now = this.#now();
    const slot = this.#slots.get(jobId);
    if (!slot || now - slot.lastWrite >= this.intervalMs || (phase !== undefined && phase !== slot.phase)) {
      if (slot?.timer) clearTimeout(slot.timer);
      this.#slots.set(jobId, { lastWrite: now, phase });
      return write();
    }
    slot.pending = write;
    slot.timer ??= setTimeout(() => this.#flush(jobId), Math.max(0, this.intervalMs - (now - slot.lastWrite)));
    return Promise.resolve();
  }

  #flush(jobId: string) {
    const slot = this.#slots.get(jobId);
    if (!slot) return;
    slot.timer = undefined;
    const write = slot.pending;
    slot.pending = undefined;
    slot.lastWrite = this.#now();
    // A pending write that fails (on the studio: its lease ended meanwhile) has no one to report to.
    write?.().catch(() => {});
  }

  /**
   * Writes a job's pending report now (the job is about to end: its last progress goes before its
   * outcome, not dropped with the lease). Resolves at once when nothing is pending; a write that
   * fails (the lease ended meanwhile) is not reported.
   */
  async flush(jobId: string): Promise<void> {
    const slot = this.#slots.get(jobId);
    if (!slot?.pending) return;
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = undefined;
    const write = slot.pending;
    slot.pending = undefined;
    slot.lastWrite = this.#now();
    await write().catch(() => {});
  }

  /** Forgets a job (it ended): a pending write is dropped. */
  drop(jobId: string): void {
    const slot = this.#slots.get(jobId);
    if (slot?.timer) clearTimeout(slot.timer);
    this.#slots.delete(jobId);
  }

  /** Drops every pending write (shutdown). */
  clear(): void {
    for (const id of [...this.#slots.keys()]) this.drop(id);
  }
}
