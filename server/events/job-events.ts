/** What changed about a job, for watchers and the dispatcher. */
export interface JobChange {
  jobId: string;
  /** The status after the change, as stored (for example "QUEUED"). */
  status: string;
  model: string;
  /** The worker that held the lease before the change, when one did (cancel orders go to it). */
  leaseWorker?: string | null;
  leaseId?: string | null;
  /**
   * The row's facts after the change, as the write returned them, so listeners (job
   * metrics) need no query per event. Every store publisher sets it; a change without
   * it (a hand-made one) leaves listeners to read what they need.
   */
  job?: JobFacts;
  /** Set when another studio replica made the change (it reached this one through the database's notifications). */
  remote?: boolean;
}

/** The stored facts of a job that event listeners use: attempts, times, outputs and progress JSON, the error. */
export interface JobFacts {
  attempts: number;
  createdAt: number;
  finishedAt: number | null;
  outputs: string;
  progress: string | null;
  /** The stored error text ("" when none); the store publishers pass whole rows, so it is there. */
  error?: string;
}

/** Where a listener's exception goes: the write it was told about has committed, so it cannot fail that. */
export type ListenerErrorHandler = (err: unknown, change: JobChange) => void;

/**
 * The in-process bus every job write publishes to after its transaction commits:
 * WatchJobs streams, the dispatcher (a QUEUED job is a reason to offer; a
 * CANCELLED one a reason to tell its worker) and metrics listen to it. Listeners are
 * isolated: one that throws is reported to `onListenerError` and the others still run,
 * and the publisher (whose write already committed) never sees the exception.
 */
export class JobEvents {
  readonly #listeners = new Set<(change: JobChange) => void>();
  readonly #onListenerError: ListenerErrorHandler;

  constructor(onListenerError: ListenerErrorHandler = (err, change) => console.error(`a job event listener threw on job ${change.jobId}:`, err)) {
    this.#onListenerError = onListenerError;
  }

  /** Publish after the write has committed, never inside the transaction. */
  publish(change: JobChange): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(change);
      } catch (err) {
        this.#onListenerError(err, change);
      }
    }
  }

  /** Subscribes; returns the function that unsubscribes (each subscription is its own, as with an EventEmitter). */
  subscribe(listener: (change: JobChange) => void): () => void {
    const own = (change: JobChange) => listener(change);
    this.#listeners.add(own);
    return () => this.#listeners.delete(own);
  }

  get listenerCount(): number {
    return this.#listeners.size;
  }
}
