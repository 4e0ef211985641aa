import type { CreateOutcome, JobStore, NewJob } from "./job-store.js";
import type { JobRow } from "./job-row.js";

/** Most creates one commit takes, so that one transaction stays short. */
export const MAX_CREATE_BATCH = 256;

interface Pending {
  input: NewJob;
  resolve: (result: { row: JobRow; created: boolean }) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for CreateJob: the creates that arrive in one turn of the event loop are written
 * in one transaction (JobStore.createBatch) instead of one commit each, which was most of a
 * create's cost under load. Every caller is answered only after the commit that holds its job,
 * so durability is what it was; a refused create fails alone. An idle create waits for nothing
 * but the end of the current turn (setImmediate).
 *
 * The callers are answered in the turn after the commit, not in the microtasks right after it: the
 * commit's events start placement, whose claims and offers run in those microtasks, and an answer
 * built there (the Job message, its wait, the RPC response) would go out first and hold every
 * offer back by its cost. A job reaches its worker before its creator hears it was queued.
 */
export class CreateBatcher {
  readonly #store: JobStore;
  readonly #maxBatch: number;
  #pending: Pending[] = [];
  #scheduled = false;
  #inFlight = false;

  constructor(store: JobStore, { maxBatch = MAX_CREATE_BATCH }: { maxBatch?: number } = {}) {
    this.#store = store;
    this.#maxBatch = maxBatch;
  }

  /** Resolves as JobStore.create would return, once the job's transaction has committed. */
  create(input: NewJob): Promise<{ row: JobRow; created: boolean }> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ input, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight || this.#pending.length === 0) return;
    this.#scheduled = true;
    setImmediate(() => this.#flush());
  }

  /**
   * Commits what is pending, one batch at a time: creates that arrive while a commit is in
   * flight (a store that waits on the network) join the next batch instead of a commit of
   * their own. A store that commits synchronously (SQLite) has answered by the next turn.
   */
  #flush(): void {
    this.#scheduled = false;
    const batch = this.#pending.splice(0, this.#maxBatch);
    if (batch.length === 0) return;
    this.#inFlight = true;
    this.#store
      .createBatch(batch.map((p) => p.input))
      .then(
        (outcomes: CreateOutcome[]) =>
          setImmediate(() =>
            batch.forEach((p, i) => {
              const o = outcomes[i]!;
              if ("error" in o) p.reject(o.error);
              else p.resolve(o);
            }),
          ),
        (err: unknown) => {
          for (const p of batch) p.reject(err);
        },
      )
      .finally(() => {
        this.#inFlight = false;
        this.#schedule();
      });
  }
}
