import type { Job, JobStatus } from "../../gen/studio/v1/job_pb.js";
import type { Api } from "./api.js";
import { describeError, isAbort, isUnauthenticated } from "./errors.js";
import { millis } from "./format.js";

/** What a feed watches: the same filters WatchJobs takes. */
export interface FeedFilter {
  statuses?: JobStatus[];
  model?: string;
  jobIds?: string[];
}

/** The feed's connection state, shown to the operator. */
export type FeedState =
  | { kind: "connecting" }
  | { kind: "live" }
  | { kind: "retrying"; error: string; inMs: number }
  | { kind: "unauthenticated"; error: string };

export interface FeedListener {
  /** A job appeared or changed; `snapshot` is true for the jobs as they were when the stream opened. */
  job(job: Job, snapshot: boolean): void;
  state(state: FeedState): void;
}

/**
 * Keeps one WatchJobs server stream open (snapshot first, then changes): no polling.
 * A broken stream is reopened with backoff and a fresh snapshot; an older copy of a
 * job never replaces a newer one, so reconnects cannot move the page backwards.
 */
export class JobFeed {
  private readonly abort = new AbortController();
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly api: Api,
    private readonly filter: FeedFilter,
    private readonly listener: FeedListener,
  ) {
    void this.run();
  }

  close(): void {
    this.abort.abort();
  }

  private async run() {
    let delay = 500;
    while (!this.abort.signal.aborted) {
      this.listener.state({ kind: "connecting" });
      try {
        const stream = this.api.jobs.watchJobs(
          {
            statuses: this.filter.statuses ?? [],
            model: this.filter.model ?? "",
            jobIds: this.filter.jobIds ?? [],
            includeSnapshot: true,
          },
          { signal: this.abort.signal },
        );
        // connect-web does not surface the response headers of a stream, so the feed
        // counts as live once asked; a failure to open replaces this at once.
        this.listener.state({ kind: "live" });
        for await (const msg of stream) {
          delay = 500;
          if (msg.job) this.offer(msg.job, msg.snapshot);
        }
        // The server ended the stream (shutdown, drain): reopen.
      } catch (err) {
        if (this.abort.signal.aborted || isAbort(err)) return;
        if (isUnauthenticated(err)) {
          this.listener.state({ kind: "unauthenticated", error: describeError(err) });
          return;
        }
        this.listener.state({ kind: "retrying", error: describeError(err), inMs: delay });
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  }

  private offer(job: Job, snapshot: boolean) {
    const at = millis(job.updateTime);
    const prev = this.seen.get(job.id);
    if (prev !== undefined && at < prev) return;
    this.seen.set(job.id, at);
    this.listener.job(job, snapshot);
  }
}

/** Describes a feed's state for the status line. */
export function feedMessage(state: FeedState): { text: string; error: boolean } {
  switch (state.kind) {
    case "connecting":
      return { text: "Connecting to the job stream…", error: false };
    case "live":
      return { text: "Live: changes appear as they happen.", error: false };
    case "retrying":
      return {
        text: `Job stream broke (${state.error}); reconnecting in ${Math.round(state.inMs / 100) / 10} s.`,
        error: true,
      };
    case "unauthenticated":
      return { text: state.error, error: true };
  }
}
