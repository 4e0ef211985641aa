import { create } from "@bufbuild/protobuf";
import { GpuDeviceSchema, type GpuDevice } from "../../gen/studio/v1/worker_service_pb.js";

/** One GPU of a worker as placement counts it. Byte counts are numbers: exact below 2^53, far past any GPU. */
interface GpuState {
  device: GpuDevice;
  slots: number;
  /** Free memory plus what the worker's own engines hold, as last reported: what its jobs may use. */
  usable: number;
  /** The leases placed on it, with the memory each was counted for. */
  leases: Map<string, number>;
  /** The sum of `leases`' needs. */
  held: number;
}

/**
 * A worker's GPUs, as placement sees them: which of its leases runs on which GPU, and how much memory
 * each GPU has left for a new job. A GPU's room is its free memory plus what the worker's own engines
 * hold there (idle warm servers are stopped to make room; running jobs are counted by their leases),
 * less what the leases placed on it need. `maxRoom` (the largest room among GPUs with a free slot) is
 * kept up to date as leases come and go and reports arrive, so that placement checks a job with one
 * comparison, and a claim in SQL with one bound.
 */
export class WorkerGpus {
  readonly #gpus: GpuState[];
  readonly #byLease = new Map<string, GpuState>();
  #maxRoom = -1;

  /** `devices` passed hello's checks (hello.ts): unique indexes, slots adding up to the worker's. */
  constructor(devices: readonly GpuDevice[]) {
    this.#gpus = devices.map((device) => ({ device, slots: device.slots, usable: usableOf(device), leases: new Map(), held: 0 }));
    this.#recompute();
  }

  /**
   * The most GPU memory a job offered now could have: the largest room among the GPUs with a free
   * slot; -1 when none has one.
   */
  get maxRoom(): number {
    return this.#maxRoom;
  }

  /** Whether a job needing `bytes` fits on some GPU with a free slot now. */
  fits(bytes: number): boolean {
    return bytes <= this.#maxRoom;
  }

  /**
   * Whether a job needing `bytes` would still fit once jobs needing `pending` (handed to this worker
   * by the same placement round, not yet placed) are: places those on a copy of the GPUs as place()
   * would, then looks. A handful of GPUs and jobs: no hot path allocates more than that.
   */
  fitsAfter(pending: readonly number[], bytes: number): boolean {
    const gpus = this.#gpus.map((g) => ({ room: g.usable - g.held, free: g.slots - g.leases.size }));
    for (const need of pending) {
      const i = pick(gpus, need);
      if (i < 0) return false;
      gpus[i]!.room -= need;
      gpus[i]!.free--;
    }
    return gpus.some((g) => g.free > 0 && g.room >= bytes);
  }

  /** maxRoom as it will be once `leaseId` (a lease ending now) is gone: for the claim made with its complete. */
  maxRoomWithout(leaseId: string): number {
    const freed = this.#byLease.get(leaseId);
    if (!freed) return this.#maxRoom;
    let best = this.#maxRoom;
    const need = freed.leases.get(leaseId)!;
    if (freed.leases.size - 1 < freed.slots) best = Math.max(best, freed.usable - (freed.held - need));
    return best;
  }

  /** Fresh memory figures from a GpuUpdate (the same GPUs, checked by the session). */
  update(devices: readonly GpuDevice[]): void {
    for (const d of devices) {
      const gpu = this.#gpus.find((g) => g.device.index === d.index);
      if (!gpu) continue;
      gpu.device = d;
      gpu.usable = usableOf(d);
    }
    this.#recompute();
  }

  /**
   * Places a lease on a GPU and returns its index: among the GPUs with a free slot, the one whose room
   * fits `bytes` most tightly (big GPUs stay free for big jobs); a job that needs nothing counted goes
   * where most slots are free. Undefined when no GPU has a free slot.
   */
  place(leaseId: string, bytes: number): number | undefined {
    const i = pick(
      this.#gpus.map((g) => ({ room: g.usable - g.held, free: g.slots - g.leases.size })),
      bytes,
    );
    if (i < 0) return undefined;
    const best = this.#gpus[i]!;
    this.#add(best, leaseId, bytes);
    return best.device.index;
  }

  /** Counts a lease the worker kept across a reconnect on the GPU it says it runs on (any GPU with a free slot when it does not say). */
  assign(leaseId: string, index: number | undefined, bytes: number): void {
    const gpu =
      (index === undefined ? undefined : this.#gpus.find((g) => g.device.index === index)) ?? this.#gpus.find((g) => g.leases.size < g.slots);
    if (gpu) this.#add(gpu, leaseId, bytes);
  }

  /** Forgets a lease that ended. */
  release(leaseId: string): void {
    const gpu = this.#byLease.get(leaseId);
    if (!gpu) return;
    gpu.held -= gpu.leases.get(leaseId)!;
    gpu.leases.delete(leaseId);
    this.#byLease.delete(leaseId);
    this.#recompute();
  }

  /** The GPUs as ListWorkers shows them: as last reported, with the slots in use on each. */
  info(): GpuDevice[] {
    return this.#gpus.map((g) => create(GpuDeviceSchema, { ...g.device, slotsInUse: g.leases.size }));
  }

  #add(gpu: GpuState, leaseId: string, bytes: number): void {
    gpu.leases.set(leaseId, bytes);
    gpu.held += bytes;
    this.#byLease.set(leaseId, gpu);
    this.#recompute();
  }

  #recompute(): void {
    let best = -1;
    for (const g of this.#gpus) if (g.leases.size < g.slots) best = Math.max(best, g.usable - g.held);
    this.#maxRoom = best;
  }
}

/**
 * The GPU for a job needing `bytes` among GPUs given as (room, free slots): of those with a free
 * slot, the one whose room fits it most tightly (else the roomiest, when none fits); a job that
 * needs nothing counted goes where most slots are free, then most room. -1 when no slot is free.
 */
function pick(gpus: ReadonlyArray<{ room: number; free: number }>, bytes: number): number {
  let best = -1;
  gpus.forEach((g, i) => {
    if (g.free <= 0) return;
    if (best < 0) {
      best = i;
      return;
    }
    const b = gpus[best]!;
    if (bytes > 0) {
      const fits = g.room >= bytes;
      const bestFits = b.room >= bytes;
      if (fits !== bestFits ? fits : fits ? g.room < b.room : g.room > b.room) best = i;
    } else if (g.free > b.free || (g.free === b.free && g.room > b.room)) best = i;
  });
  return best;
}

function usableOf(d: GpuDevice): number {
  return Number(d.freeMemoryBytes + d.workerMemoryBytes);
}
