/**
 * The IPC messages between a benchmark and its worker processes (BullMQ workers and the
 * Session bench workers speak the same ones, so that the two sides are measured the same way).
 */
export type ToWorker =
  /** Send back every receipt and completion recorded so far, then keep going. */
  | { type: "report" }
  /** Start over: forget what was recorded (between phases). */
  | { type: "reset" }
  /** eager: send progress on every completion (one-at-a-time phases) instead of every 50 ms. */
  | { type: "mode"; eager: boolean };

export type FromWorker =
  /** Every connection or session of the process is up and waiting for work. */
  | { type: "ready"; sessions: number }
  /** Jobs completed (and confirmed by the queue) so far, sent at most every 50 ms while jobs flow. */
  | { type: "progress"; completed: number }
  /**
   * jobIds[i] was received at receivedMs[i] and its completion was confirmed at completedMs[i]
   * (NaN if not yet); times are epoch milliseconds with sub-millisecond precision.
   */
  | { type: "report"; jobIds: string[]; receivedMs: number[]; completedMs: number[] }
  | { type: "error"; message: string };

export const isReady = (m: FromWorker): m is Extract<FromWorker, { type: "ready" }> => m.type === "ready";
export const isReport = (m: FromWorker): m is Extract<FromWorker, { type: "report" }> => m.type === "report";

/** Per-process record of which job arrived when and when its completion was confirmed. */
export class ReceiptLog {
  private readonly received = new Map<string, number>();
  private readonly completed = new Map<string, number>();
  private progressTimer: ReturnType<typeof setTimeout> | undefined;
  private eager = false;

  constructor(private readonly send: (m: FromWorker) => void) {}

  receive(jobId: string, atMs: number): void {
    if (!this.received.has(jobId)) this.received.set(jobId, atMs);
  }

  complete(jobId: string, atMs: number): void {
    this.completed.set(jobId, atMs);
    if (this.eager) {
      this.send({ type: "progress", completed: this.completed.size });
      return;
    }
    this.progressTimer ??= setTimeout(() => {
      this.progressTimer = undefined;
      this.send({ type: "progress", completed: this.completed.size });
    }, 50);
  }

  report(): Extract<FromWorker, { type: "report" }> {
    const jobIds = [...this.received.keys()];
    return {
      type: "report",
      jobIds,
      receivedMs: jobIds.map((id) => this.received.get(id)!),
      completedMs: jobIds.map((id) => this.completed.get(id) ?? Number.NaN),
    };
  }

  reset(): void {
    this.received.clear();
    this.completed.clear();
  }

  /** Answers the parent's IPC messages on this process. */
  listen(): void {
    process.on("message", (m: ToWorker) => {
      if (m.type === "report") this.send(this.report());
      else if (m.type === "reset") this.reset();
      else if (m.type === "mode") this.eager = m.eager;
    });
  }
}

/** Sends a message to the parent over IPC. */
export function toParent(m: FromWorker): void {
  process.send?.(m);
}
