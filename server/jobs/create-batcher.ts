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
 */
export class CreateBatcher {
  readonly #store: JobStore;
  readonly #maxBatch: number;
  #pending: Pending[] = [];
  #scheduled = false;

  constructor(store: JobStore, { maxBatch = MAX_CREATE_BATCH }: { maxBatch?: number } = {}) {
    this.#store = store;
    this.#maxBatch = maxBatch;
  }

  /** Resolves as JobStore.create would return, once the job's transaction has committed. */
  create(input: NewJob): Promise<{ row: JobRow; created: boolean }> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ input, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, this.#maxBatch);
      let outcomes: CreateOutcome[];
      try {
        outcomes = this.#store.createBatch(batch.map((p) => p.input));
      } catch (err) {
        for (const p of batch) p.reject(err);
        continue;
      }
      batch.forEach((p, i) => {
        const o = outcomes[i]!;
        if ("error" in o) p.reject(o.error);
        else p.resolve(o);
      });
    }
  }
}
