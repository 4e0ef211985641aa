/** Options of the progress throttle. */
export interface ProgressThrottleOptions {
  /** At most one stored write per job per this many milliseconds. */
  intervalMs?: number;
}

interface Slot {
  lastWrite: number;
  /** The phase of the last write (undefined when the caller names none). */
  phase?: string;
  pending?: () => Promise<void>;
  timer?: ReturnType<typeof setTimeout>;
}

/**
 * Bounds how often a job's progress is written and published: the first report
 * is written at once (it moves the job to RUNNING), and so is every change of phase
 * (downloading, loading, running...: a short phase must not vanish behind the next
 * one, or before the job ends and drops what is pending); later reports of a phase
 * at most every intervalMs, the last report of a burst written when its window ends.
 */
export class ProgressThrottle {
  readonly intervalMs: number;
  readonly #slots = new Map<string, Slot>();

  constructor({ intervalMs = 250 }: ProgressThrottleOptions = {}) {
    if (!(intervalMs >= 0)) throw new RangeError(`intervalMs must be >= 0 (got ${intervalMs})`);
    this.intervalMs = intervalMs;
  }

  /** Writes now, or keeps `write` as the job's pending write; returns the immediate write's promise. */
  submit(jobId: string, write: () => Promise<void>, phase?: string): Promise<void> {
    const now = performance.now();
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
    slot.lastWrite = performance.now();
    // A pending write whose lease ended meanwhile is refused by the store; nothing to report to anyone.
    write?.().catch(() => {});
  }

  /**
   * Writes a job's pending report now (its worker is about to end the lease: the last progress it
   * reported is stored before the job's outcome, not dropped with the lease). Resolves at once when
   * nothing is pending; a write the store refuses (the lease ended meanwhile) is not reported.
   */
  async flush(jobId: string): Promise<void> {
    const slot = this.#slots.get(jobId);
    if (!slot?.pending) return;
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = undefined;
    const write = slot.pending;
    slot.pending = undefined;
    slot.lastWrite = performance.now();
    await write().catch(() => {});
  }

  /** Forgets a job (its lease ended): a pending write is dropped. */
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
