import { create } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import type { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import type { Offer } from "../../gen/studio/v1/job_pb.js";
import {
  CacheUpdateSchema,
  JobDeclineSchema,
  WorkerDrainSchema,
  WorkerHelloSchema,
  type SessionResponse,
  type WorkerHello,
} from "../../gen/studio/v1/worker_service_pb.js";
import type { LiveSession, SessionHandlers } from "../session/session-client.js";
import { JobRun } from "./job-run.js";
import { JobStop } from "./job-stop.js";
import type { Downloads, EngineRouter, JobView, SessionSource } from "./ports.js";

/** After the drain grace runs out, how long the jobs stopped then get to report their retryable failure. */
export const DRAIN_REPORT_MS = 10_000;

export interface WorkerRuntimeOptions {
  name: string;
  version: string;
  slots: number;
  labels?: Record<string, string>;
  engines: EngineRouter & { readonly kinds: ModelEngine[] };
  downloads: Downloads;
  view: JobView;
  logger: Logger;
  workRoot: string;
  jobTimeoutMs: number;
  progressIntervalMs?: number;
  receiptTimeoutMs?: number;
}

/**
 * The worker's side of the session: answers offers with a JobRun while a slot is free, routes
 * cancel orders and receipts to their job, lists the leases it holds in hello and heartbeats,
 * reports cache changes, and drains on shutdown.
 */
export class WorkerRuntime implements SessionHandlers {
  /** Running jobs by lease id (a job re-offered after a retry has a new lease). */
  private readonly jobs = new Map<string, JobRun>();
  /**
   * Jobs the studio took back (cancelled, or lease lost) that are still stopping, with the promise
   * of their end. The studio counts their slots free at once, so an offer may arrive before the
   * engine is down: the new job is taken, and waits for a stopping job's slot before it starts.
   */
  private readonly releasing = new Map<string, Promise<unknown>>();
  private readonly runs = new Map<string, Promise<unknown>>();
  private readonly finished: Array<() => void> = [];
  private readonly stopAll = new AbortController();
  private sessions: SessionSource | undefined;
  private draining = false;
  private digests = new Set<string>();
  private urls = new Set<string>();
  private cacheCheck: Promise<void> = Promise.resolve();

  constructor(private readonly options: WorkerRuntimeOptions) {}

  /** Gives the runtime the session source its jobs talk on (the SessionClient). */
  attach(sessions: SessionSource): void {
    this.sessions = sessions;
  }

  /** Reads the cache's digests and unverified URLs before the first hello. */
  async loadCache(): Promise<void> {
    this.digests = new Set(await this.options.downloads.cachedDigests());
    this.urls = new Set(await this.options.downloads.cachedUrls());
  }

  get activeJobs(): number {
    return this.jobs.size;
  }

  hello(): WorkerHello {
    const o = this.options;
    return create(WorkerHelloSchema, {
      name: o.name,
      version: o.version,
      engines: o.engines.kinds,
      slots: o.slots,
      cachedSha256: [...this.digests].sort(),
      cachedUrls: [...this.urls].sort(),
      labels: o.labels ?? {},
      leaseIds: this.leaseIds(),
    });
  }

  /** Leases the studio still holds for us: jobs not yet settled. */
  leaseIds(): string[] {
    return this.unsettled().map((j) => j.leaseId);
  }

  private unsettled(): JobRun[] {
    return [...this.jobs.values()].filter((j) => !j.settled);
  }

  welcome(session: LiveSession): void {
    for (const leaseId of session.welcome.lostLeaseIds) {
      const job = this.jobs.get(leaseId);
      if (!job) continue;
      this.release(leaseId);
      job.stop(new JobStop("lease-lost", `the studio gave lease ${leaseId} of job ${job.jobId} up while we were away`));
    }
    if (this.draining) session.post({ case: "drain", value: create(WorkerDrainSchema) });
  }

  message(message: SessionResponse["message"], session: LiveSession): void {
    switch (message.case) {
      case "offer":
        return this.offer(message.value, session);
      case "cancel": {
        const job = this.jobs.get(message.value.leaseId);
        if (job && job.jobId === message.value.jobId) {
          this.release(message.value.leaseId);
          job.stop(new JobStop("cancelled", `cancelled by the studio${message.value.reason ? `: ${message.value.reason}` : ""}`));
        }
        return;
      }
      case "receipt": {
        const job = this.jobs.get(message.value.leaseId);
        if (job && job.jobId === message.value.jobId) job.receipt(message.value, session);
        else if (!message.value.ok)
          this.options.logger.debug({ receipt: message.value }, "receipt for a job this worker no longer holds");
        return;
      }
      default:
        this.options.logger.warn({ case: message.case }, "unexpected message from the studio");
    }
  }

  closed(session: LiveSession | undefined): void {
    if (session) for (const job of this.jobs.values()) job.sessionClosed(session.id);
  }

  private offer(offer: Offer, session: LiveSession) {
    const { logger } = this.options;
    if (this.jobs.has(offer.leaseId)) return;
    const inUse = [...this.jobs.values()].filter((j) => !j.slotFreed && !this.releasing.has(j.leaseId)).length;
    const busy = this.draining
      ? "the worker is draining"
      : inUse >= this.options.slots
        ? `no free slot (${inUse} of ${this.options.slots} in use)`
        : undefined;
    if (busy) {
      session.post({ case: "decline", value: create(JobDeclineSchema, { jobId: offer.jobId, leaseId: offer.leaseId, reason: busy }) });
      logger.info({ jobId: offer.jobId, reason: busy }, "declined an offer");
      return;
    }
    const sessions = this.sessions;
    if (!sessions) throw new Error("WorkerRuntime.attach was not called");
    const o = this.options;
    const job = new JobRun(offer, {
      engines: o.engines,
      downloads: o.downloads,
      sessions,
      view: o.view,
      logger,
      workRoot: o.workRoot,
      timeoutMs: o.jobTimeoutMs,
      stopSignal: this.stopAll.signal,
      cacheChanged: () => this.cacheChanged(),
      progressIntervalMs: o.progressIntervalMs,
      receiptTimeoutMs: o.receiptTimeoutMs,
    });
    this.jobs.set(offer.leaseId, job);
    logger.info({ jobId: offer.jobId, model: offer.model, attempt: offer.attempt }, "took an offer");
    const run = this.slotHandover(offer.leaseId).then(() => job.run());
    this.runs.set(offer.leaseId, run);
    void run.then(({ outcome, message }) => {
      this.jobs.delete(offer.leaseId);
      this.runs.delete(offer.leaseId);
      this.releasing.delete(offer.leaseId);
      logger.info({ jobId: offer.jobId, outcome, message }, "job ended");
      // Reading the cache's listings costs milliseconds of CPU; a job that ran warm never touched it.
      if (!job.ranWarm) void this.cacheChanged();
      if (this.jobs.size === 0) for (const f of this.finished.splice(0)) f();
    });
  }

  /** Marks a job the studio took back: its slot is the studio's to offer again once it has stopped. */
  private release(leaseId: string) {
    const run = this.runs.get(leaseId);
    if (run) this.releasing.set(leaseId, run);
  }

  /**
   * Waits while stopping jobs still occupy every slot, so a new engine never runs beside a dying one past the slot count.
   * A job released while it waits here never waits on itself (its own run is in `releasing` then).
   */
  private async slotHandover(leaseId: string): Promise<void> {
    for (;;) {
      const occupied = [...this.jobs.entries()].filter(([id, j]) => id !== leaseId && !j.slotFreed).length;
      const stopping = [...this.releasing].filter(([id]) => id !== leaseId).map(([, run]) => run);
      if (occupied < this.options.slots || stopping.length === 0) return;
      await Promise.race(stopping);
    }
  }

  /** Compares the cache with what the studio was told and sends cache_update for the difference. */
  cacheChanged(): Promise<void> {
    this.cacheCheck = this.cacheCheck.then(async () => {
      const digests = diff(this.digests, new Set(await this.options.downloads.cachedDigests()));
      const urls = diff(this.urls, new Set(await this.options.downloads.cachedUrls()));
      this.digests = digests.now;
      this.urls = urls.now;
      if (digests.changes + urls.changes > 0)
        this.sessions?.session?.post({
          case: "cacheUpdate",
          value: create(CacheUpdateSchema, {
            addedSha256: digests.added,
            removedSha256: digests.removed,
            addedUrls: urls.added,
            removedUrls: urls.removed,
          }),
        });
    }).catch((err) => this.options.logger.warn({ err }, "could not read the cache's digests and URLs"));
    return this.cacheCheck;
  }

  /** Resolves when no job is running. */
  whenIdle(): Promise<void> {
    if (this.jobs.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.finished.push(resolve));
  }

  /**
   * Takes no new offers and tells the studio so; waits up to graceMs for in-flight jobs, then
   * stops what is left (each reports a retryable failure) and waits up to reportMs for that.
   */
  async drain(graceMs: number, reportMs = DRAIN_REPORT_MS): Promise<void> {
    if (!this.draining) {
      this.draining = true;
      this.sessions?.session?.post({ case: "drain", value: create(WorkerDrainSchema) });
    }
    if (!(await within(this.whenIdle(), graceMs))) {
      this.options.logger.warn({ jobs: this.jobs.size, graceMs }, "drain grace ran out; stopping the jobs left");
      this.stopJobs();
      await within(this.whenIdle(), reportMs);
    }
    this.stopAll.abort();
  }

  /** Stops at once: every job is aborted and nothing more is delivered. */
  stopNow(): void {
    this.draining = true;
    this.stopJobs();
    this.stopAll.abort();
  }

  private stopJobs() {
    for (const job of this.jobs.values()) job.stop(new JobStop("shutdown", "the worker shut down before the job finished"));
  }
}

async function within(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ok = await Promise.race([p.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]);
  clearTimeout(timer);
  return ok;
}

/** What was added to and removed from a reported set. */
function diff(before: ReadonlySet<string>, now: Set<string>) {
  const added = [...now].filter((d) => !before.has(d)).sort();
  const removed = [...before].filter((d) => !now.has(d)).sort();
  return { now, added, removed, changes: added.length + removed.length };
}
