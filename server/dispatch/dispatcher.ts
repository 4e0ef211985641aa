import { create } from "@bufbuild/protobuf";
import { sharedModelSourceFromStored } from "../../contract/model-source.js";
import type { ModelSource } from "../../gen/studio/v1/model_pb.js";
import { SessionResponseSchema } from "../../gen/studio/v1/worker_service_pb.js";
import type { StudioContext } from "../context.js";
import type { JobChange } from "../events/job-events.js";
import type { DeclineMemory } from "./decline-memory.js";
import type { DisabledModels } from "./disabled-models.js";
import type { Claimed, QueueActions } from "./queue-actions.js";
import type { ClaimFilter, QueueStore, QueuedJob } from "./queue-store.js";
import type { WorkerEntry, WorkerRegistry } from "./worker-registry.js";

/** The most queued jobs one placement round looks at before falling back to plain per-worker claims. */
export const PLACEMENT_WINDOW = 256;
/**
 * Queued jobs a round looks at per free slot: enough to find a warm worker for most
 * jobs, and a round's cost follows the free slots, not the depth of the queue.
 */
export const JOBS_PER_FREE_SLOT = 4;

/** How placement recognises one of a job's files in a worker's cache: by digest when it has one, else by URL. */
type FileKey = { sha256: string; url?: undefined } | { sha256?: undefined; url: string };

/** Whether a worker reported this file as cached: its sha256 among the worker's digests, or (no sha256) its URL among its URLs. */
function holds(w: WorkerEntry, key: FileKey): boolean {
  return key.sha256 !== undefined ? w.cached.has(key.sha256) : w.cachedUrls.has(key.url);
}

/** Each source's file keys, worked out once per stored source text (whose parse the contract caches by text). */
const fileKeysBySource = new WeakMap<ModelSource, readonly FileKey[]>();

/** A queued job's file keys; none for a job with no source or a malformed one (nothing to match a cache against). */
function fileKeysOf(job: QueuedJob): readonly FileKey[] {
  const source = sharedModelSourceFromStored(job.modelSource);
  if (!source) return [];
  let keys = fileKeysBySource.get(source);
  if (!keys) {
    keys = source.files.map((f): FileKey => (f.sha256 ? { sha256: f.sha256 } : { url: f.url }));
    fileKeysBySource.set(source, keys);
  }
  return keys;
}

/** What the dispatcher needs. */
export interface DispatcherDeps {
  ctx: StudioContext;
  store: QueueStore;
  registry: WorkerRegistry;
  declines: DeclineMemory;
  actions: QueueActions;
  /** Models disabled after their jobs were queued: those jobs are held, not offered. */
  disabled?: Pick<DisabledModels, "has" | "list">;
}

/**
 * Pushes queued jobs to connected workers. A round runs whenever something may
 * have made an offer possible (a job queued, a worker connected, a slot freed):
 * it walks the queue head in claim order and gives each job to a free worker
 * that can serve it, preferring one whose cache holds all the job's files (by
 * sha256, or by URL for files without one), else
 * the least busy. Every free worker then takes the oldest job it can serve
 * beyond that window, so nothing starves. Rounds never overlap; the store's
 * conditional claim makes sure a job is on offer to one worker at a time.
 *
 * It also forwards the end of a lease it did not cause (CancelJob, lease expiry)
 * to the worker holding it as a CancelOrder.
 */
export class Dispatcher {
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #unsubscribe: (() => void) | undefined;

  constructor(readonly deps: DispatcherDeps) {}

  start(): void {
    this.#unsubscribe = this.deps.ctx.events.subscribe((change) => this.#onChange(change));
  }

  stop(): void {
    this.#stopped = true;
    this.#unsubscribe?.();
  }

  /** Asks for a placement round; rounds requested while one runs coalesce into one more. */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
      // A wake between the loop's last check and here found a round still running: it is owed one.
      if (this.#again) this.wake();
    });
  }

  /** Resolves when no round is running (tests). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #loop() {
    do {
      this.#again = false;
      try {
        await this.#round();
      } catch (err) {
        this.deps.ctx.logger.error({ err }, "placement round failed");
      }
    } while (this.#again && !this.#stopped);
  }

  /**
   * One placement round. Its claims are made together, not one after the other: the store commits
   * writes in groups (on SQLite, the claims asked for together share one transaction, committed
   * once the round has asked for them all), so a round that waited for each claim would pay a
   * commit per job while creates and completes queue up behind it.
   */
  async #round() {
    const { registry } = this.deps;
    const sole = registry.soleFree();
    if (sole === undefined) return;
    if (sole !== "several") {
      // One worker to fill leaves no choice to make: its own claims take the oldest jobs it can
      // serve, as the round would, without reading the queue head first (the common case under
      // load: a completion frees one slot while every other worker is busy).
      await this.#fill(sole);
      return;
    }
    const window = Math.min(PLACEMENT_WINDOW, registry.freeSlots() * JOBS_PER_FREE_SLOT);
    const head = await this.deps.store.peekQueued(window);
    if (head.length === 0) return;
    // Slots this round has handed out, by worker: a chosen job takes one at once, before its claim commits.
    const taken = new Map<WorkerEntry, number>();
    // On workers with GPUs, the GPU memory of the jobs this round handed out (placed when their claims commit).
    const gpuTaken = new Map<WorkerEntry, number[]>();
    let slotsLeft = registry.freeSlots();
    const offers: Promise<boolean>[] = [];
    for (const job of head) {
      if (slotsLeft === 0) break;
      if (this.deps.disabled?.has(job.model)) continue;
      const chosen = this.#choose(job, taken, gpuTaken);
      if (!chosen) continue;
      taken.set(chosen, (taken.get(chosen) ?? 0) + 1);
      if (chosen.gpus) gpuTaken.set(chosen, [...(gpuTaken.get(chosen) ?? []), job.vramBytes ?? 0]);
      slotsLeft--;
      offers.push(this.#offer(chosen, job.id));
    }
    await Promise.all(offers);
    if (head.length < window) return;
    await Promise.all(registry.free().map((w) => this.#fill(w)));
  }

  /**
   * Claims for every free slot of `w` at once (one group commit), again while each claim found a job.
   * A worker with GPUs claims one job at a time: each claim's bound is the room its GPUs have left
   * once the previous job is placed (GPU jobs run for seconds; their claims are not the hot path).
   */
  async #fill(w: WorkerEntry): Promise<void> {
    const { registry } = this.deps;
    if (w.gpus) {
      while (registry.isFree(w) && (await this.#offer(w)));
      return;
    }
    for (;;) {
      const slots = w.slots - w.leases.size;
      if (slots <= 0 || !registry.isFree(w)) return;
      const got = await Promise.all(Array.from({ length: slots }, () => this.#offer(w)));
      if (got.includes(false)) return;
    }
  }

  /**
   * The worker for a job, in one pass over the workers with a free slot, in the order they became
   * free: among those that can serve it (engine, no recent decline, a slot this round has not handed
   * out), one whose cache holds all its files if any does; then the one with the most free slots;
   * then the one free the longest. A job with no files takes the first worker with as many free
   * slots as any worker has, without looking further: with a thousand idle workers a round costs
   * what its jobs cost, not jobs times workers. A worker with GPUs qualifies only when one of them
   * can hold the job (one comparison with its largest room; with jobs already handed to it this
   * round, a placement of those on a copy of its few GPUs).
   */
  #choose(job: QueuedJob, taken: ReadonlyMap<WorkerEntry, number>, gpuTaken: ReadonlyMap<WorkerEntry, number[]>): WorkerEntry | undefined {
    const { registry, declines } = this.deps;
    const files = fileKeysOf(job);
    const most = registry.maxSlots;
    let best: WorkerEntry | undefined;
    let bestLeft = 0;
    let bestWarm = false;
    for (const w of registry.withRoom()) {
      const left = w.slots - w.leases.size - (taken.get(w) ?? 0);
      if (left <= 0) continue;
      if (job.engine !== null && !(w.engines as ReadonlySet<string>).has(job.engine)) continue;
      // A worker with GPUs takes only what one of them can hold now (CPU-only workers are not checked).
      if (w.gpus && job.vramBytes !== null) {
        const before = gpuTaken.get(w);
        if (before ? !w.gpus.fitsAfter(before, job.vramBytes) : !w.gpus.fits(job.vramBytes)) continue;
      }
      if (!registry.isFree(w) || declines.has(w.id, job.id)) continue;
      const warm = files.length > 0 && files.every((f) => holds(w, f));
      if (best === undefined || (warm && !bestWarm) || (warm === bestWarm && left > bestLeft)) {
        best = w;
        bestLeft = left;
        bestWarm = warm;
        if (files.length === 0 && left >= most) break;
      }
    }
    return best;
  }

  /**
   * What `worker` may claim (its engines, less the jobs it recently declined and those of disabled models;
   * on GPUs, what one of them can hold now, or once `freeing` has ended), or exactly `jobId`.
   */
  #filterOf(worker: WorkerEntry, jobId?: string, freeing?: string): ClaimFilter {
    const maxVramBytes = worker.gpus && (freeing === undefined ? worker.gpus.maxRoom : worker.gpus.maxRoomWithout(freeing));
    return {
      workerName: worker.name,
      engines: [...worker.engines],
      excludeJobIds: this.deps.declines.list(worker.id),
      excludeModels: this.deps.disabled?.list,
      jobId,
      maxVramBytes,
    };
  }

  /** Claims (a given job, or the next the worker can serve) and sends the Offer; false when nothing was claimed. */
  async #offer(worker: WorkerEntry, jobId?: string): Promise<boolean> {
    const claimed = await this.deps.actions.claim(this.#filterOf(worker, jobId), worker.tokenId, (c) => this.deliver(worker, c));
    return claimed !== undefined;
  }

  /** Hands a job leased for `worker` to it: its slot is taken and the Offer sent. */
  deliver(worker: WorkerEntry, { row, offer }: Claimed): void {
    const gpu = this.deps.registry.hold(worker, row.leaseId!, row.id, row.vramBytes ?? 0);
    // Which GPU the job runs on is decided here, where the books of every GPU's leases are kept.
    if (gpu !== undefined) offer.gpuIndex = gpu;
    const sent = worker.send(create(SessionResponseSchema, { message: { case: "offer", value: offer } }));
    // A stream that closed in between leaves the lease to expire (or to a reconnect that names it).
    if (!sent) this.deps.registry.drop(worker, row.leaseId!);
  }

  /**
   * The claim for the slot `worker` frees with the complete it just sent, made in that complete's
   * transaction, when placement would make that claim anyway: the worker may take offers and no
   * other worker has a free slot (with one, a round chooses among them). Undefined otherwise.
   */
  refillFilter(worker: WorkerEntry, freeing?: string): ClaimFilter | undefined {
    if (this.#stopped || worker.draining || this.deps.registry.hasFreeBesides(worker)) return undefined;
    return this.#filterOf(worker, undefined, freeing);
  }

  #onChange(change: JobChange) {
    if (change.status === "QUEUED") this.wake();
    if (change.status === "OFFERED" || change.status === "RUNNING" || !change.leaseId) return;
    this.deps.actions.leaseGone(change.jobId, change.leaseId);
    const holder = this.deps.registry.release(change.leaseId);
    if (!holder) return;
    holder.send(
      create(SessionResponseSchema, {
        message: {
          case: "cancel",
          value: { jobId: change.jobId, leaseId: change.leaseId, reason: `the job is now ${change.status}` },
        },
      }),
    );
    this.wake();
  }
}
