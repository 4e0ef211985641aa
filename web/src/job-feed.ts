import type { Job, JobStatus, TextDelta } from "../../gen/studio/v1/job_pb.js";
import type { Api } from "./api.js";
import { millis } from "./format.js";
import { keepStreaming, type FeedState } from "./live-stream.js";

/** What a feed watches: the same filters WatchJobs takes. */
export interface FeedFilter {
  statuses?: JobStatus[];
  model?: string;
  jobIds?: string[];
  /** Also text jobs' output as it streams (WatchJobs include_text). */
  includeText?: boolean;
}

export interface FeedListener {
  /** A job appeared or changed; `snapshot` is true for the jobs as they were when the stream opened. */
  job(job: Job, snapshot: boolean): void;
  state(state: FeedState): void;
  /** The next piece of a text job's output (includeText). */
  text?(delta: TextDelta): void;
}

/**
 * Keeps one WatchJobs server stream open (snapshot first, then changes) as keepStreaming does:
 * no polling, a broken stream reopened with backoff and a fresh snapshot; an older copy of a
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
    await keepStreaming(
      (signal) =>
        this.api.jobs.watchJobs(
          {
            statuses: this.filter.statuses ?? [],
            model: this.filter.model ?? "",
            jobIds: this.filter.jobIds ?? [],
            includeSnapshot: true,
            includeText: this.filter.includeText ?? false,
          },
          { signal },
        ),
      {
        message: (msg) => {
          if (msg.job) this.offer(msg.job, msg.snapshot);
          else if (msg.textDelta) this.listener.text?.(msg.textDelta);
        },
        state: (state) => this.listener.state(state),
      },
      this.abort.signal,
    );
  }

  private offer(job: Job, snapshot: boolean) {
    const at = millis(job.updateTime);
    const prev = this.seen.get(job.id);
    if (prev !== undefined && at < prev) return;
    this.seen.set(job.id, at);
    this.listener.job(job, snapshot);
  }
}

export { feedMessage, type FeedState } from "./live-stream.js";
