import { EventEmitter } from "node:events";

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

/**
 * The in-process bus every job write publishes to after its transaction commits:
 * WatchJobs streams, the dispatcher (a QUEUED job is a reason to offer; a
 * CANCELLED one a reason to tell its worker) and metrics listen to it.
 */
export class JobEvents {
  readonly #emitter = new EventEmitter();

  constructor() {
    this.#emitter.setMaxListeners(0);
  }

  /** Publish after the write has committed, never inside the transaction. */
  publish(change: JobChange): void {
    this.#emitter.emit("change", change);
  }

  /** Subscribes; returns the function that unsubscribes. */
  subscribe(listener: (change: JobChange) => void): () => void {
    this.#emitter.on("change", listener);
    return () => this.#emitter.off("change", listener);
  }

  get listenerCount(): number {
    return this.#emitter.listenerCount("change");
  }
}
