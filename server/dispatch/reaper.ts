import type { Logger } from "../log.js";
import type { QueueActions } from "./queue-actions.js";
import type { ExpiredLease, QueueStore } from "./queue-store.js";

/** Options of the lease reaper. */
export interface LeaseReaperOptions {
  /** How often to look for expired leases; defaults to a quarter of the lease TTL, at most 1 s. */
  intervalMs?: number;
}

/**
 * Takes back expired leases: the job goes back to the queue, or FAILED naming the
 * lost worker once its attempts are used. Publishing the change lets the
 * dispatcher re-offer it and tell a still-connected holder to stop.
 * Tests call runOnce() with a moved clock instead of waiting for the timer.
 */
export class LeaseReaper {
  readonly intervalMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #running: Promise<ExpiredLease[]> | undefined;

  constructor(
    readonly deps: { store: QueueStore; actions: QueueActions; now: () => number; logger: Logger },
    leaseTtlMs: number,
    { intervalMs = Math.min(1000, Math.max(50, Math.floor(leaseTtlMs / 4))) }: LeaseReaperOptions = {},
  ) {
    if (!(intervalMs > 0)) throw new RangeError(`reaper intervalMs must be > 0 (got ${intervalMs})`);
    this.intervalMs = intervalMs;
  }

  start(): void {
    this.#timer ??= setInterval(() => {
      this.runOnce().catch((err: unknown) => this.deps.logger.error({ err }, "lease reaper failed"));
    }, this.intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => {});
  }

  /** One pass: expires every lease past due now and publishes each change. */
  runOnce(): Promise<ExpiredLease[]> {
    this.#running ??= (async () => {
      try {
        const expired = await this.deps.store.expire(this.deps.now());
        for (const e of expired) {
          this.deps.logger.warn({ jobId: e.row.id, worker: e.leaseWorker, status: e.row.status }, "lease expired");
          this.deps.actions.publish(e.row, e.leaseId, e.leaseWorker);
        }
        return expired;
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }
}
