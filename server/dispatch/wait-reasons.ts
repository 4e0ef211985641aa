import { create } from "@bufbuild/protobuf";
import { engineName } from "../../contract/names.js";
import { formatBytes } from "../../contract/byte-size.js";
import { waitingJobOf, type JobWaits, type WaitingJob } from "../jobs/job-waits.js";
import { JobStatus, QueueWaitSchema, WaitReason, type Job, type QueueWait } from "../../gen/studio/v1/job_pb.js";
import type { GpuDevice, WorkerInfo } from "../../gen/studio/v1/worker_service_pb.js";
import type { QueueStore } from "./queue-store.js";

export interface WaitReasonsOptions {
  /** How long one look at the workers, the registry and the queue head answers reads. */
  ttlMs?: number;
  /** How deep into the queue positions are counted; deeper jobs read position 0 (unknown). */
  depth?: number;
}


/** One look at what decides a queued job's wait, shared by every read within the TTL. */
interface Look {
  at: number;
  workers: WorkerInfo[];
  disabled: Set<string>;
  /** Position in line (1-based) of each queued job among the queued jobs of its engine, over the queue head. */
  positions: Map<string, number>;
  /** The head read was cut at `depth`: a job missing from `positions` is deeper, not newer. */
  truncated: boolean;
}

/** A look younger than this is not taken again for a job it does not know yet (one created since). */
const MIN_LOOK_AGE_MS = 250;

/**
 * Why a queued job has not been offered yet, worked out when a job is read (GetJob, ListJobs,
 * WatchJobs), never on the dispatch paths. One look (the worker list every replica publishes, the
 * disabled models as dispatch holds them, the first `depth` queued jobs in claim order) answers every read for
 * `ttlMs`, so a busy page or many CLI watches cost one look a second, not one per job.
 */
export class WaitReasons implements JobWaits {
  readonly #listWorkers: () => Promise<WorkerInfo[]>;
  readonly #disabled: () => ReadonlySet<string>;
  readonly #queue: QueueStore;
  readonly #now: () => number;
  readonly #ttlMs: number;
  readonly #depth: number;
  #look: Look | undefined;
  #looking: Promise<Look> | undefined;

  constructor(
    deps: { listWorkers: () => Promise<WorkerInfo[]>; disabled: () => ReadonlySet<string>; queue: QueueStore; now: () => number },
    { ttlMs = 1000, depth = 1000 }: WaitReasonsOptions = {},
  ) {
    this.#listWorkers = deps.listWorkers;
    this.#disabled = deps.disabled;
    this.#queue = deps.queue;
    this.#now = deps.now;
    this.#ttlMs = ttlMs;
    this.#depth = depth;
  }

  /**
   * Sets `waiting` on each QUEUED job of the list (and clears it on the others); one look for all
   * of them. A queued job the look does not know (created since) makes a new look when the last is
   * older than a quarter second, unless `fresh` is false (CreateJob's and CreateJobs' replies: a
   * create takes no look of its own, only the shared one of each second, and a place in line the
   * look does not know is left out).
   */
  async annotate(jobs: readonly Job[], { fresh = true }: { fresh?: boolean } = {}): Promise<void> {
    if (!jobs.some((j) => j.status === JobStatus.QUEUED)) {
      for (const j of jobs) j.waiting = undefined;
      return;
    }
    let look = await this.#current();
    const unknown = (l: Look) => !l.truncated && jobs.some((j) => j.status === JobStatus.QUEUED && !l.positions.has(j.id));
    if (fresh && unknown(look) && this.#now() - look.at >= MIN_LOOK_AGE_MS) look = await this.#current(true);
    for (const j of jobs) j.waiting = j.status === JobStatus.QUEUED ? explain(look, waitingJobOf(j)) : undefined;
  }

  /** The wait of one queued job, from the current look. */
  async explain(job: WaitingJob): Promise<QueueWait> {
    return explain(await this.#current(), job);
  }

  #current(renew = false): Promise<Look> {
    if (!renew && this.#look && this.#now() - this.#look.at < this.#ttlMs) return Promise.resolve(this.#look);
    this.#looking ??= this.#take().finally(() => (this.#looking = undefined));
    return this.#looking;
  }

  async #take(): Promise<Look> {
    const [workers, head] = await Promise.all([this.#listWorkers(), this.#queue.peekQueued(this.#depth)]);
    const disabled = new Set(this.#disabled());
    const positions = new Map<string, number>();
    const perEngine = new Map<string, number>();
    for (const q of head) {
      if (disabled.has(q.model)) continue;
      const key = q.engine ?? "";
      const n = (perEngine.get(key) ?? 0) + 1;
      perEngine.set(key, n);
      positions.set(q.id, n);
    }
    this.#look = { at: this.#now(), workers, disabled, positions, truncated: head.length >= this.#depth };
    return this.#look;
  }
}


const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const ordinal = (n: number) => {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : ({ 1: "st", 2: "nd", 3: "rd" } as Record<number, string>)[n % 10] ?? "th";
  return `${n}${suffix}`;
};

function explain(look: Look, job: WaitingJob): QueueWait {
  const connected = look.workers.length;
  const capable = job.engine === undefined ? look.workers : look.workers.filter((w) => w.engines.some((e) => engineName(e) === job.engine));
  const position = look.positions.get(job.id) ?? 0;
  const wait = (reason: WaitReason, message: string) =>
    create(QueueWaitSchema, {
      reason,
      message,
      engine: job.engine ?? "",
      capableWorkers: capable.length,
      connectedWorkers: connected,
      queuePosition: reason === WaitReason.MODEL_DISABLED ? 0 : position,
    });
  const inLine = position > 0 ? `; ${ordinal(position)} in line` : look.truncated ? `; more than ${look.positions.size} jobs ahead` : "";
  if (look.disabled.has(job.model)) {
    return wait(WaitReason.MODEL_DISABLED, `model ${job.model} was disabled after this job was queued: it waits until an admin enables the model again (or the job is cancelled)`);
  }
  const engine = job.engine ?? "any engine";
  if (capable.length === 0) {
    const others = connected === 0 ? "no worker is connected" : `${plural(connected, "worker")} connected, running ${[...new Set(look.workers.flatMap((w) => w.engines.map((e) => engineName(e) ?? `engine ${e}`)))].sort().join(", ")}`;
    return wait(WaitReason.NO_CAPABLE_WORKER, `no connected worker runs ${engine} (${others})`);
  }
  const need = job.vramBytes;
  // CPU-only workers are not checked against GPU memory (a job they take runs in RAM), as in placement.
  const onGpus = need !== undefined && capable.every((w) => w.gpus.length > 0);
  if (onGpus) {
    const largest = Math.max(...capable.flatMap((w) => w.gpus.map((g) => Number(g.totalMemoryBytes))));
    if (largest < need) {
      const which = capable.length === 1 ? `the 1 worker that runs ${engine}` : `the ${capable.length} workers that run ${engine}`;
      return wait(WaitReason.GPU_MEMORY, `it needs ${formatBytes(need)} of GPU memory and no GPU of ${which} is that large (the largest has ${formatBytes(largest)})${inLine}`);
    }
  }
  const free = capable.filter((w) => !w.draining && w.slotsInUse < Math.max(1, w.slots));
  if (free.length === 0) {
    const draining = capable.filter((w) => w.draining).length;
    const which = capable.length === 1 ? `the 1 worker that runs ${engine} is` : `all ${capable.length} workers that run ${engine} are`;
    return wait(WaitReason.WORKERS_BUSY, `${which} ${draining === capable.length ? "draining" : "busy"}${inLine}`);
  }
  if (onGpus) {
    const rooms = free.flatMap((w) => w.gpus.filter((g) => g.slotsInUse < Math.max(1, g.slots)).map(roomOf));
    const most = rooms.length ? Math.max(...rooms) : 0;
    if (most < need!) {
      return wait(
        WaitReason.GPU_MEMORY,
        `it needs ${formatBytes(need!)} of GPU memory and no free GPU of the ${plural(free.length, "worker")} that run${free.length === 1 ? "s" : ""} ${engine} with a free slot has that much room now (the most is ${formatBytes(most)})${inLine}`,
      );
    }
  }
  return wait(WaitReason.DISPATCHING, `${plural(free.length, "worker")} that run${free.length === 1 ? "s" : ""} ${engine} ${free.length === 1 ? "has" : "have"} a free slot: it is about to be offered${inLine}`);
}

/**
 * What a GPU has for a new job as the worker last reported it: its free memory plus what the worker's
 * own engines hold (idle warm servers are stopped to make room). Placement also takes off what the
 * leases on it need; a worker's report does not carry that, so this is the most the job could have.
 */
function roomOf(g: GpuDevice): number {
  return Number(g.freeMemoryBytes) + Number(g.workerMemoryBytes);
}
