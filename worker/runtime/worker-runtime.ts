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
import { formatBytes } from "../../contract/byte-size.js";
import { describeVramNeed, vramNeedOf } from "../../contract/vram.js";
import type { GpuPool } from "../gpus/gpu-pool.js";
import type { JobGpu } from "../engines/types.js";
import { JobRun } from "./job-run.js";
import { JobStop } from "./job-stop.js";
import type { Downloads, EngineRouter, JobView, SessionSource } from "./ports.js";

/** After the drain grace runs out, how long the jobs stopped then get to report their retryable failure. */
export const DRAIN_REPORT_MS = 10_000;

export interface WorkerRuntimeOptions {
  name: string;
  version: string;
  slots: number;
  /** Each slot's GPU index (undefined: the CPU); unset: `slots` CPU slots. */
  slotGpus?: ReadonlyArray<number | undefined>;
  /** The GPUs the slots run on; required when slotGpus names any. */
  gpus?: GpuPool;
  /** The worker runs with --gpus none: engines are kept off every GPU. */
  cpuOnly?: boolean;
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
  /** Each slot, its GPU and the job that took it last (until that job's run ends). */
  private readonly slots: Array<{ gpu: number | undefined; job?: JobRun; run?: Promise<unknown> }>;
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

  constructor(private readonly options: WorkerRuntimeOptions) {
    const gpus = options.slotGpus ?? Array.from({ length: options.slots }, () => undefined);
    if (gpus.some((g) => g !== undefined) && !options.gpus) throw new Error("WorkerRuntime: slotGpus names GPUs but no GpuPool was given");
    this.slots = gpus.map((gpu) => ({ gpu }));
  }

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
    const gpus = o.gpus?.devices() ?? [];
    if (o.gpus) o.gpus.sentInHello(gpus);
    const leaseGpus: Record<string, number> = {};
    for (const slot of this.slots)
      if (slot.gpu !== undefined && slot.job && !slot.job.settled) leaseGpus[slot.job.leaseId] = slot.gpu;
    return create(WorkerHelloSchema, {
      name: o.name,
      version: o.version,
      engines: o.engines.kinds,
      slots: this.slots.length,
      cachedSha256: [...this.digests].sort(),
      cachedUrls: [...this.urls].sort(),
      labels: o.labels ?? {},
      leaseIds: this.leaseIds(),
      gpus,
      leaseGpus,
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

  /** Whether a slot's job still holds it: running, and neither finished (its last message sent) nor taken back by the studio. */
  private holds(slot: { job?: JobRun }): boolean {
    return slot.job !== undefined && this.jobs.get(slot.job.leaseId) === slot.job && !slot.job.slotFreed && !this.releasing.has(slot.job.leaseId);
  }

  /**
   * A free slot for an offer: on the GPU the studio placed it on (any slot when the offer names
   * none, or this worker has no GPU); an empty slot first, then one whose job is ending.
   */
  private pickSlot(gpuIndex: number | undefined) {
    const onGpu = gpuIndex !== undefined && this.options.gpus !== undefined;
    const free = this.slots.filter((s) => (!onGpu || s.gpu === gpuIndex) && !this.holds(s));
    return free.find((s) => s.job === undefined) ?? free.find((s) => !this.releasing.has(s.job!.leaseId)) ?? free[0];
  }

  private decline(offer: Offer, session: LiveSession, reason: string) {
    session.post({ case: "decline", value: create(JobDeclineSchema, { jobId: offer.jobId, leaseId: offer.leaseId, reason }) });
    this.options.logger.info({ jobId: offer.jobId, reason }, "declined an offer");
  }

  private offer(offer: Offer, session: LiveSession) {
    const { logger } = this.options;
    if (this.jobs.has(offer.leaseId)) return;
    if (this.draining) return this.decline(offer, session, "the worker is draining");
    const slot = this.pickSlot(offer.gpuIndex);
    if (!slot) {
      const inUse = this.slots.filter((s) => this.holds(s)).length;
      const where = offer.gpuIndex !== undefined && this.options.gpus ? ` on GPU ${offer.gpuIndex}` : "";
      return this.decline(offer, session, `no free slot${where} (${inUse} of ${this.slots.length} in use)`);
    }
    const gpu = slot.gpu === undefined ? undefined : this.jobGpu(slot.gpu, offer);
    if (gpu && gpu.needBytes > 0 && !this.options.gpus!.couldFit(gpu.index, gpu.needBytes, offer.jobId)) {
      const room = this.options.gpus!.room(gpu.index, offer.jobId);
      return this.decline(
        offer,
        session,
        `${gpu.label} cannot hold the job: it needs ${gpu.needText}; the GPU has ${formatBytes(Math.max(0, room.freeBytes - room.pendingBytes))} free for it` +
          (room.idleBytes > 0 ? ` and ${formatBytes(room.idleBytes)} held by idle warm servers` : ""),
      );
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
      gpu,
      cpuOnly: o.cpuOnly,
    });
    this.jobs.set(offer.leaseId, job);
    logger.info({ jobId: offer.jobId, model: offer.model, attempt: offer.attempt, gpu: gpu?.index }, "took an offer");
    // A job the studio took back may still be stopping in this slot: the new one starts once it has.
    const previous = slot.job && this.releasing.has(slot.job.leaseId) ? slot.run : undefined;
    if (gpu) o.gpus!.jobStarted(offer.jobId, gpu.index, gpu.needBytes);
    const run = (previous ? previous.then(() => undefined, () => undefined) : Promise.resolve()).then(() => job.run());
    slot.job = job;
    slot.run = run;
    this.runs.set(offer.leaseId, run);
    void run.then(({ outcome, message }) => {
      if (slot.job === job) {
        slot.job = undefined;
        slot.run = undefined;
      }
      if (gpu) o.gpus!.jobEnded(offer.jobId);
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

  /** The GPU a job runs on, with the memory it was placed with (from its source: stated, or the studio's estimate). */
  private jobGpu(index: number, offer: Offer): JobGpu {
    const pool = this.options.gpus!;
    const need = vramNeedOf(offer.modelSource);
    return {
      index,
      label: pool.describe(index),
      env: pool.envFor(index),
      needBytes: need?.bytes ?? 0,
      needText: need ? describeVramNeed(need) : "no GPU memory (none could be worked out)",
      pool,
    };
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
