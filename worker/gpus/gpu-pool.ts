import { create } from "@bufbuild/protobuf";
import { formatBytes } from "../../contract/byte-size.js";
import { GpuDeviceSchema, GpuVendor, type GpuDevice } from "../../gen/studio/v1/worker_service_pb.js";
import { DEFAULT_TOOL_TIMEOUT_MS, readInventory, type GpuTools } from "./inventory.js";
import type { PlannedGpu } from "./gpu-plan.js";
import type { GpuReading, GpuSnapshot, GpuVendorName } from "./types.js";

/** A warm engine process (llama-server) the pool may stop to make room on its GPU. */
export interface WarmProcess {
  readonly gpu: number;
  /** What placement charged for it: the need of the job that started it. */
  readonly chargeBytes: number;
  /** Its pid while it runs. */
  readonly pid: number | undefined;
  /** How people know it ("llama-server for model qwen3 (file q.gguf)"). */
  readonly label: string;
  /** Serving no job now. */
  idle(): boolean;
  /** When a job last used it (performance.now()). */
  lastUsedAt(): number;
  /** Stops it; resolves once it has exited. */
  stop(): Promise<void>;
}

/** No room for a job on its GPU, even with every idle warm server stopped: the job must not start there. */
export class NoRoomError extends Error {
  readonly code = "no_gpu_room";
  constructor(message: string) {
    super(message);
    this.name = "NoRoomError";
  }
}

/** What a GPU holds for a new job, as the pool counts it. */
export interface GpuRoom {
  freeBytes: number;
  /** Held by idle warm servers, which can be stopped. */
  idleBytes: number;
  /** Still to be loaded by the other jobs started on it (what they need less what their processes hold). */
  pendingBytes: number;
}

export interface GpuPoolOptions {
  gpus: PlannedGpu[];
  vendor: GpuVendorName;
  tools: GpuTools;
  toolTimeoutMs?: number;
  /** How often the GPUs are read again, in milliseconds. */
  pollMs: number;
  logger: { info(o: object, m?: string): void; warn(o: object, m?: string): void };
  /** Called with the GPUs' figures when they moved enough to tell the studio (GpuUpdate). */
  onUpdate?: (devices: GpuDevice[]) => void;
  /** At most one update per this long (default 1 s). */
  minUpdateIntervalMs?: number;
}

interface JobEntry {
  gpu: number;
  needBytes: number;
  pids: Set<number>;
}

/** An update is sent when a GPU's figures moved by this share of its memory. */
const UPDATE_FRACTION = 0.01;
/** At most one update per this long. */
const UPDATE_MIN_INTERVAL_MS = 1000;

/**
 * The worker's GPUs and what is on them. It reads them (at start, every `pollMs`, after an engine
 * starts or stops) and keeps the books the tools cannot: which processes are the worker's own (each
 * engine process and warm server, by pid and GPU), which jobs run on which GPU and what each needs.
 * From that it answers whether a job fits on a GPU (free memory, plus what idle warm servers hold,
 * less what jobs started there have yet to load), makes room by stopping idle warm servers least
 * recently used first, and reports each GPU to the studio (hello and GpuUpdate) with the memory its
 * own engines hold. nvidia-smi says what each process holds; rocm-smi cannot, so on AMD a process
 * counts what placement charged it.
 */
export class GpuPool {
  readonly #opts: GpuPoolOptions;
  #readings = new Map<number, GpuReading>();
  #processes: GpuSnapshot["processes"];
  /** Our engine processes: pid → GPU and charge. */
  readonly #ours = new Map<number, { gpu: number; chargeBytes: number }>();
  readonly #jobs = new Map<string, JobEntry>();
  readonly #warm = new Set<WarmProcess>();
  /** One room-making at a time per GPU: two jobs must not both count the same free memory. */
  readonly #locks = new Map<number, Promise<void>>();
  #refreshing: Promise<void> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #soon: ReturnType<typeof setTimeout> | undefined;
  #lastSent: GpuDevice[] | undefined;
  #lastSentAt = 0;
  #failing = false;

  constructor(opts: GpuPoolOptions) {
    this.#opts = opts;
    for (const { gpu } of opts.gpus) this.#readings.set(gpu.index, gpu);
  }

  /** The GPUs in use, in index order, with their slots. */
  get gpus(): readonly PlannedGpu[] {
    return this.#opts.gpus;
  }

  get vendor(): GpuVendorName {
    return this.#opts.vendor;
  }

  /** Starts the periodic reads. */
  start(): void {
    this.#timer ??= setInterval(() => void this.refresh(), this.#opts.pollMs);
  }

  stop(): void {
    clearInterval(this.#timer);
    clearTimeout(this.#soon);
    this.#timer = undefined;
  }

  /** The variables that pin an engine process to a GPU (by UUID where there is one, so the numbering cannot differ). */
  envFor(gpu: number): Record<string, string> {
    const reading = this.#readings.get(gpu);
    if (!reading) throw new RangeError(`GPU ${gpu} is not one of this worker's`);
    if (reading.vendor === "nvidia")
      return { CUDA_VISIBLE_DEVICES: reading.uuid || String(gpu), CUDA_DEVICE_ORDER: "PCI_BUS_ID" };
    return { HIP_VISIBLE_DEVICES: String(gpu) };
  }

  /** What people call a GPU: "GPU 1 (NVIDIA GeForce RTX 4090)". */
  describe(gpu: number): string {
    const r = this.#readings.get(gpu);
    return r ? `GPU ${gpu} (${r.name})` : `GPU ${gpu}`;
  }

  /** Reads the GPUs again (concurrent callers share one read); a failed read keeps the last figures and warns once. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#read().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  /** Asks for a read shortly (an engine started or stopped: its memory moves). */
  soon(delayMs = 250): void {
    if (this.#soon) return;
    this.#soon = setTimeout(() => {
      this.#soon = undefined;
      void this.refresh();
    }, delayMs);
    this.#soon.unref?.();
  }

  async #read(): Promise<void> {
    const result = await readInventory(this.#opts.tools, { timeoutMs: this.#opts.toolTimeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS, only: this.#opts.vendor });
    const found = new Map(result.snapshot.gpus.map((g) => [g.index, g]));
    const lost = this.#opts.gpus.filter(({ gpu }) => !found.has(gpu.index));
    if (result.snapshot.gpus.length === 0 || lost.length > 0) {
      if (!this.#failing)
        this.#opts.logger.warn(
          { problems: [...result.problems, ...result.notes], lost: lost.map(({ gpu }) => gpu.index) },
          "could not read the GPUs again; placement keeps their last figures",
        );
      this.#failing = true;
      if (result.snapshot.gpus.length === 0) return;
    } else if (this.#failing) {
      this.#failing = false;
      this.#opts.logger.info({}, "the GPUs read again");
    }
    for (const { gpu } of this.#opts.gpus) {
      const fresh = found.get(gpu.index);
      if (fresh && fresh.uuid === gpu.uuid) this.#readings.set(gpu.index, fresh);
    }
    this.#processes = result.snapshot.processes;
    this.#maybeSend();
  }

  /** What a process of ours holds on its GPU: measured where the tool says (NVIDIA), else its charge. */
  #bytesOf(pid: number): number {
    const mine = this.#ours.get(pid);
    if (!mine) return 0;
    if (this.#processes === undefined) return mine.chargeBytes;
    const uuid = this.#readings.get(mine.gpu)?.uuid;
    const listed = this.#processes.find((p) => p.pid === pid && (uuid === "" || p.gpuUuid === uuid));
    if (!listed) return 0;
    return listed.usedBytes ?? mine.chargeBytes;
  }

  /** What the worker's own processes hold on a GPU, at most what is in use there. */
  workerBytes(gpu: number): number {
    let sum = 0;
    for (const [pid, p] of this.#ours) if (p.gpu === gpu) sum += this.#bytesOf(pid);
    const r = this.#readings.get(gpu);
    return r ? Math.min(sum, r.usedBytes) : sum;
  }

  /** Records an engine process of ours on a GPU; `jobId` when it runs one job (sd-cli), none for a warm server. */
  processStarted(pid: number, gpu: number, chargeBytes: number, jobId?: string): void {
    this.#ours.set(pid, { gpu, chargeBytes });
    if (jobId) this.#jobs.get(jobId)?.pids.add(pid);
    this.soon();
  }

  processEnded(pid: number): void {
    this.#ours.delete(pid);
    for (const job of this.#jobs.values()) job.pids.delete(pid);
    this.soon();
  }

  /** A job starts on a GPU, needing this much memory: other jobs count it until its processes hold it. */
  jobStarted(jobId: string, gpu: number, needBytes: number): void {
    this.#jobs.set(jobId, { gpu, needBytes, pids: new Set() });
  }

  jobEnded(jobId: string): void {
    if (this.#jobs.delete(jobId)) this.soon();
  }

  /** A warm server (already counted by processStarted) serves `jobId` now, or no longer. */
  serving(jobId: string, pid: number, on: boolean): void {
    const job = this.#jobs.get(jobId);
    if (!job) return;
    if (on) job.pids.add(pid);
    else job.pids.delete(pid);
  }

  addWarm(w: WarmProcess): void {
    this.#warm.add(w);
  }

  removeWarm(w: WarmProcess): void {
    this.#warm.delete(w);
  }

  /** What a GPU holds for a new job (`jobId`'s own need left out). */
  room(gpu: number, jobId?: string): GpuRoom {
    const r = this.#readings.get(gpu);
    const freeBytes = r ? r.totalBytes - r.usedBytes : 0;
    let idleBytes = 0;
    for (const w of this.#warm) if (w.gpu === gpu && w.idle() && w.pid !== undefined) idleBytes += this.#bytesOf(w.pid);
    let pendingBytes = 0;
    for (const [id, job] of this.#jobs) {
      if (id === jobId || job.gpu !== gpu) continue;
      let held = 0;
      for (const pid of job.pids) held += this.#bytesOf(pid);
      pendingBytes += Math.max(0, job.needBytes - held);
    }
    return { freeBytes, idleBytes, pendingBytes };
  }

  /** Whether `needBytes` could fit on a GPU at all now (with every idle warm server stopped). */
  couldFit(gpu: number, needBytes: number, jobId?: string): boolean {
    const room = this.room(gpu, jobId);
    return room.freeBytes + room.idleBytes - room.pendingBytes >= needBytes;
  }

  /**
   * Makes `needBytes` free on a GPU for `jobId`: reads the GPU afresh, then, while the free memory
   * (less what other jobs there still load) falls short, stops the idle warm server used least
   * recently (never `keep`). Throws NoRoomError, stopping nothing, when even all of them would not do.
   */
  async makeRoom(gpu: number, needBytes: number, jobId: string, keep?: WarmProcess): Promise<void> {
    if (needBytes <= 0) return;
    const previous = this.#locks.get(gpu) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    this.#locks.set(gpu, previous.then(() => mine));
    await previous;
    try {
      await this.refresh();
      const room = this.room(gpu, jobId);
      let have = room.freeBytes - room.pendingBytes;
      if (have >= needBytes) return;
      const idle = [...this.#warm]
        .filter((w) => w.gpu === gpu && w !== keep && w.idle() && w.pid !== undefined)
        .sort((a, b) => a.lastUsedAt() - b.lastUsedAt());
      const reclaimable = idle.reduce((n, w) => n + this.#bytesOf(w.pid!), 0);
      if (have + reclaimable < needBytes)
        throw new NoRoomError(
          `${this.describe(gpu)} cannot hold the job: it needs ${formatBytes(needBytes)}, and the GPU has ${formatBytes(Math.max(0, room.freeBytes))} free` +
            (room.pendingBytes > 0 ? `, ${formatBytes(room.pendingBytes)} of it still to be loaded by other jobs` : "") +
            (reclaimable > 0 ? `, with ${formatBytes(reclaimable)} more held by idle warm servers` : ""),
        );
      for (const w of idle) {
        const bytes = this.#bytesOf(w.pid!);
        this.#opts.logger.info(
          { jobId, gpu, stopping: w.label, frees: bytes, needs: needBytes },
          `stopping the least recently used idle warm server on ${this.describe(gpu)} to make room`,
        );
        await w.stop();
        have += bytes;
        if (have >= needBytes) break;
      }
      await this.refresh();
    } finally {
      release();
      if (this.#locks.get(gpu) === mine) this.#locks.delete(gpu);
    }
  }

  /** The GPUs as hello and GpuUpdate carry them. */
  devices(): GpuDevice[] {
    return this.#opts.gpus.map(({ gpu, slots }) => {
      const r = this.#readings.get(gpu.index) ?? gpu;
      return create(GpuDeviceSchema, {
        index: r.index,
        uuid: r.uuid,
        name: r.name,
        vendor: r.vendor === "nvidia" ? GpuVendor.NVIDIA : GpuVendor.AMD,
        totalMemoryBytes: BigInt(r.totalBytes),
        freeMemoryBytes: BigInt(r.totalBytes - r.usedBytes),
        workerMemoryBytes: BigInt(this.workerBytes(r.index)),
        slots,
      });
    });
  }

  /** Records what hello carried, so that updates are sent from there. */
  sentInHello(devices: GpuDevice[]): void {
    this.#lastSent = devices;
    this.#lastSentAt = performance.now();
  }

  #maybeSend(): void {
    if (!this.#opts.onUpdate) return;
    const now = this.devices();
    const last = this.#lastSent;
    const moved =
      !last ||
      now.some((d, i) => {
        const before = last[i];
        if (!before) return true;
        const step = Number(d.totalMemoryBytes) * UPDATE_FRACTION;
        return (
          Math.abs(Number(d.freeMemoryBytes - before.freeMemoryBytes)) >= step ||
          Math.abs(Number(d.workerMemoryBytes - before.workerMemoryBytes)) >= step
        );
      });
    if (!moved) return;
    const wait = (this.#opts.minUpdateIntervalMs ?? UPDATE_MIN_INTERVAL_MS) - (performance.now() - this.#lastSentAt);
    if (wait > 0) {
      this.soon(wait);
      return;
    }
    this.#lastSent = now;
    this.#lastSentAt = performance.now();
    this.#opts.onUpdate(now);
  }
}
