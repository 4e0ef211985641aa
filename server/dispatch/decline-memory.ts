/**
 * Which jobs each worker declined recently, so placement does not hand a job
 * straight back to a worker that just said it cannot run it. In memory: after a
 * restart a worker may see a declined job once more, which is harmless.
 */
export class DeclineMemory {
  readonly #byWorker = new Map<string, Map<string, number>>();

  constructor(
    readonly forMs: number,
    readonly now: () => number,
  ) {}

  add(workerId: string, jobId: string): void {
    let jobs = this.#byWorker.get(workerId);
    if (!jobs) this.#byWorker.set(workerId, (jobs = new Map()));
    jobs.set(jobId, this.now() + this.forMs);
  }

  /** The job ids this worker declined that are still within the window. */
  list(workerId: string): string[] {
    const jobs = this.#byWorker.get(workerId);
    if (!jobs) return [];
    const now = this.now();
    for (const [id, until] of jobs) if (until <= now) jobs.delete(id);
    return [...jobs.keys()];
  }

  has(workerId: string, jobId: string): boolean {
    const until = this.#byWorker.get(workerId)?.get(jobId);
    return until !== undefined && until > this.now();
  }

  forgetWorker(workerId: string): void {
    this.#byWorker.delete(workerId);
  }
}
