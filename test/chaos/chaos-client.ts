import { toJson } from "@bufbuild/protobuf";
import { ConnectError, type Client } from "@connectrpc/connect";
import { JobOutputSchema, JobStatus, type Task } from "../../gen/studio/v1/job_pb.js";
import type { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { BROKEN_MODEL, FAIL_MARKER, SD_MODEL, SYNTH_MODEL } from "./chaos-cluster.js";
import type { StoredOutput } from "./invariants.js";
import type { SeededRandom } from "./random.js";


/**
 * The job mix: synthetic images (batches of 1-3, some with size overrides) and text, fake sd-cli
 * images (batches of 1-2), and a few jobs made to fail (sd-cli exits 1; a model whose file is 404).
 */
export function randomJob(n: number, random: SeededRandom): { model: string; task: Task; maxAttempts?: number } {
  const seed = BigInt(random.below(2 ** 31));
  const image = (prompt: string, batchCount: number, overrides?: { width: number; height: number }) =>
    ({ kind: { case: "image", value: { prompt, seed, batchCount, negativePrompt: "", overrides } } }) as unknown as Task;
  const r = random.next();
  if (r < 0.5) return { model: SYNTH_MODEL, task: image(`synthetic ${n}`, 1 + (n % 3)) };
  if (r < 0.6) return { model: SYNTH_MODEL, task: image(`small ${n}`, 1, { width: 24, height: 16 }) };
  if (r < 0.7) return { model: SYNTH_MODEL, task: { kind: { case: "text", value: { prompt: `say ${n}`, seed, messages: [], stop: [] } } } as unknown as Task };
  if (r < 0.95) return { model: SD_MODEL, task: image(`sd ${n}`, 1 + (n % 2)) };
  if (r < 0.975) return { model: SD_MODEL, task: image(`${FAIL_MARKER} ${n}`, 1), maxAttempts: 2 };
  return { model: BROKEN_MODEL, task: image(`broken ${n}`, 1), maxAttempts: 2 };
}

/**
 * Follows SUCCEEDED events over WatchJobs, reconnecting across studio restarts: records when each
 * success arrived (for the recovery figures) and the outputs each job had when first seen succeeded.
 */
export class SuccessWatcher {
  readonly seenAtSuccess = new Map<string, StoredOutput[]>();
  readonly successTimes: number[] = [];
  private watching = true;
  private readonly done: Promise<void>;

  constructor(private readonly jobs: Client<typeof JobService>) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (this.watching) {
      const abort = new AbortController();
      const stopper = setInterval(() => !this.watching && abort.abort(), 200);
      try {
        for await (const res of this.jobs.watchJobs({ statuses: [JobStatus.SUCCEEDED] }, { signal: abort.signal })) {
          const job = res.job;
          if (!job || job.status !== JobStatus.SUCCEEDED) continue;
          this.successTimes.push(Date.now());
          if (!this.seenAtSuccess.has(job.id)) this.seenAtSuccess.set(job.id, job.outputs.map((x) => toJson(JobOutputSchema, x) as StoredOutput));
        }
      } catch {
        // The studio went away; reconnect below.
      } finally {
        clearInterval(stopper);
      }
      if (this.watching) await Bun.sleep(100);
    }
  }

  /** Resolves with how long after `since` the first success arrived (undefined after `limitMs`). */
  async firstSuccessAfter(since: number, limitMs = 60_000): Promise<number | undefined> {
    while (Date.now() - since < limitMs) {
      const first = this.successTimes.find((t) => t >= since);
      if (first !== undefined) return first - since;
      await Bun.sleep(20);
    }
    return undefined;
  }

  async stop(): Promise<void> {
    this.watching = false;
    await this.done;
  }
}

/**
 * Creates jobs every `intervalMs` until stopped, each with an idempotency key so that a create whose
 * answer was lost to a studio kill is retried without making a second job; cancels every 23rd job a
 * moment after creating it (queued, running or already done).
 */
export class JobCreator {
  created = 0;
  retries = 0;
  private running = true;
  private readonly done: Promise<void>;

  constructor(
    private readonly jobs: Client<typeof JobService>,
    private readonly intervalMs: number,
    private readonly keyPrefix: string,
    private readonly random: SeededRandom,
  ) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    for (let n = 1; this.running; n++) {
      const job = randomJob(n, this.random);
      const cancelAfterMs = this.random.between(0, 800);
      for (;;) {
        try {
          const res = await this.jobs.createJob({ ...job, idempotencyKey: `${this.keyPrefix}-${n}` }, { timeoutMs: 5000 });
          this.created += 1;
          if (n % 23 === 0) setTimeout(() => void this.jobs.cancelJob({ jobId: res.job!.id }).catch(() => {}), cancelAfterMs);
          break;
        } catch (err) {
          if (!(err instanceof ConnectError)) throw err;
          this.retries += 1;
          await Bun.sleep(100);
        }
      }
      await Bun.sleep(this.intervalMs);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}
