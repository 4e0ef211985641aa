import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { randomBytes } from "node:crypto";
import { engineFromName, type EngineName } from "../../contract/names.js";
import { WorkerInfoSchema, type SessionResponse, type WorkerInfo } from "../../gen/studio/v1/worker_service_pb.js";
import type { WorkerGpus } from "./worker-gpus.js";

/** Most cached digests the studio remembers per worker. */
export const MAX_CACHED_DIGESTS = 4096;
export { MAX_CACHED_URLS } from "../../contract/worker-limits.js";

/** One connected streaming worker, as dispatch sees it. */
export interface WorkerEntry {
  id: string;
  name: string;
  version: string;
  engines: Set<EngineName>;
  slots: number;
  /** Live leases: lease id → job id. Changed only through WorkerRegistry (hold, drop, release), which indexes them. */
  leases: Map<string, string>;
  /** sha256 digests of the verified files in the worker's cache. */
  cached: Set<string>;
  /** URLs of complete files it cached without a digest, for sources whose files carry no sha256. */
  cachedUrls: Set<string>;
  labels: Record<string, string>;
  /** Its GPUs and the leases placed on each; unset for a CPU-only worker (no GPU memory is checked). */
  gpus?: WorkerGpus;
  tokenId: string;
  connectTime: number;
  /** When the worker last sent anything (hello, heartbeat or any other message), on the studio's clock. */
  lastHeartbeat: number;
  /** When its HTTP/2 connection last answered the studio's PING (peer-liveness.ts); unset while not probed. */
  peerAckAt?: number;
  /** A lease of it expired while it said nothing: it gets no offers until it sends a message. */
  stalled?: boolean;
  draining: boolean;
  /** Pushes a message down the worker's stream; false once the stream closed. */
  send(message: SessionResponse): boolean;
  /** Ends the worker's stream from the studio's side (shutdown); its leases stay for a reconnect. */
  end(): void;
}

/** Options of the registry. */
export interface WorkerRegistryOptions {
  /** The studio's clock (the one lastHeartbeat is stamped with). */
  now?: () => number;
  /**
   * How long a worker may be silent (see isSilent) before it gets no offers: a stopped, half-open
   * or hung session would take every job and let each lease expire. The studio passes the lease TTL.
   */
  silentAfterMs?: number;
}

/**
 * The connected workers, in memory: placement, cancel routing and ListWorkers read it.
 * Leases are taken and given back through it (hold, drop, release), so that it can keep
 * two indexes up to date as they change: lease id → holder (cancel routing and
 * completions in O(1)) and the workers with a free slot (placement looks only at those,
 * so a round costs what the free slots cost, not what the connected workers do).
 */
export class WorkerRegistry {
  readonly #workers = new Map<string, WorkerEntry>();
  readonly #byLease = new Map<string, WorkerEntry>();
  /** Workers with leases.size < slots (draining and silent ones included: free() leaves them out), with their free slots. */
  readonly #withRoom = new Map<WorkerEntry, number>();
  /** The sum of #withRoom's free slots. */
  #roomSlots = 0;
  #maxSlots = 0;
  readonly #now: () => number;
  readonly #silentAfterMs: number;

  constructor({ now = Date.now, silentAfterMs = Number.POSITIVE_INFINITY }: WorkerRegistryOptions = {}) {
    this.#now = now;
    this.#silentAfterMs = silentAfterMs;
  }

  /**
   * Whether a worker is silent (it gets no offers): it has sent nothing for longer than silentAfterMs
   * while it owed messages (it holds leases: offers to answer, heartbeats to send; or one of its
   * leases expired since it last spoke), or, idle, its connection has not answered a PING for as long.
   * An idle worker need not send anything to keep getting offers.
   */
  isSilent(w: WorkerEntry): boolean {
    const now = this.#now();
    if (now - w.lastHeartbeat <= this.#silentAfterMs) return false;
    if (w.stalled || w.leases.size > 0) return true;
    return w.peerAckAt === undefined || now - w.peerAckAt > this.#silentAfterMs;
  }

  /** Whether placement may offer to a worker with room: not draining, not silent. */
  #eligible(w: WorkerEntry): boolean {
    return !w.draining && !this.isSilent(w);
  }

  /** A fresh worker id. */
  static newId(): string {
    return `w_${randomBytes(8).toString("hex")}`;
  }

  /** Registers a worker with the leases it already holds (kept across a reconnect). */
  add(worker: WorkerEntry): void {
    this.#workers.set(worker.id, worker);
    this.#maxSlots = Math.max(this.#maxSlots, worker.slots);
    for (const leaseId of worker.leases.keys()) this.#byLease.set(leaseId, worker);
    this.#refresh(worker);
  }

  remove(workerId: string): WorkerEntry | undefined {
    const w = this.#workers.get(workerId);
    if (!w) return undefined;
    this.#workers.delete(workerId);
    if (this.#workers.size === 0) this.#maxSlots = 0;
    this.#roomSlots -= this.#withRoom.get(w) ?? 0;
    this.#withRoom.delete(w);
    for (const leaseId of w.leases.keys()) if (this.#byLease.get(leaseId) === w) this.#byLease.delete(leaseId);
    return w;
  }

  get(workerId: string): WorkerEntry | undefined {
    return this.#workers.get(workerId);
  }

  all(): WorkerEntry[] {
    return [...this.#workers.values()];
  }

  /**
   * Records that `worker` now holds a lease on `jobId`; on a worker with GPUs the lease is placed on
   * one of them, counting `vramBytes` (the job's need; 0 when none is counted), and its index returned.
   */
  hold(worker: WorkerEntry, leaseId: string, jobId: string, vramBytes = 0): number | undefined {
    worker.leases.set(leaseId, jobId);
    const gpu = worker.gpus?.place(leaseId, vramBytes);
    if (this.#workers.get(worker.id) === worker) this.#byLease.set(leaseId, worker);
    this.#refresh(worker);
    return gpu;
  }

  /** Forgets one of `worker`'s leases (it was refused, lost or never reached the worker). */
  drop(worker: WorkerEntry, leaseId: string): void {
    worker.leases.delete(leaseId);
    worker.gpus?.release(leaseId);
    if (this.#byLease.get(leaseId) === worker) this.#byLease.delete(leaseId);
    this.#refresh(worker);
  }

  /** The worker holding a lease, if it is connected. */
  holderOf(leaseId: string): WorkerEntry | undefined {
    return this.#byLease.get(leaseId);
  }

  /** Forgets a lease wherever it is held; returns the worker that held it. */
  release(leaseId: string): WorkerEntry | undefined {
    const w = this.#byLease.get(leaseId);
    if (!w) return undefined;
    // Taken back from a worker silent past the TTL: it let the lease expire, so it waits for its next message.
    if (this.#now() - w.lastHeartbeat > this.#silentAfterMs) w.stalled = true;
    this.drop(w, leaseId);
    return w;
  }

  /** The most slots any connected worker has (an upper bound: it only falls when the registry empties). */
  get maxSlots(): number {
    return this.#maxSlots;
  }

  /**
   * The workers with a free slot, in the order they last became free (draining and silent ones
   * included: check isFree). Placement walks this instead of building a list of every free worker.
   */
  withRoom(): IterableIterator<WorkerEntry> {
    return this.#withRoom.keys();
  }

  /** The only worker that may take an offer now, "several", or undefined for none: without building a list. */
  soleFree(): WorkerEntry | "several" | undefined {
    let found: WorkerEntry | undefined;
    for (const w of this.#withRoom.keys()) {
      if (!this.#eligible(w)) continue;
      if (found) return "several";
      found = w;
    }
    return found;
  }

  /** Whether some worker may take another offer (cheap: placement asks it on every wake). */
  hasFree(): boolean {
    for (const w of this.#withRoom.keys()) if (this.#eligible(w)) return true;
    return false;
  }

  /** Whether a worker other than `w` may take another offer now. */
  hasFreeBesides(w: WorkerEntry): boolean {
    for (const other of this.#withRoom.keys()) if (other !== w && this.#eligible(other)) return true;
    return false;
  }

  /** Free slots over the workers with room (draining and silent ones included): an upper bound, in O(1). */
  freeSlots(): number {
    return this.#roomSlots;
  }

  /** Whether this worker may take another offer now: connected, not draining, not silent, a slot free. */
  isFree(w: WorkerEntry): boolean {
    return this.#withRoom.has(w) && this.#eligible(w);
  }

  /** Workers that may take another offer: not draining, not silent, a slot free. */
  free(): WorkerEntry[] {
    const out: WorkerEntry[] = [];
    for (const w of this.#withRoom.keys()) if (this.#eligible(w)) out.push(w);
    return out;
  }

  #refresh(w: WorkerEntry) {
    const room = this.#workers.get(w.id) === w ? Math.max(0, w.slots - w.leases.size) : 0;
    this.#roomSlots += room - (this.#withRoom.get(w) ?? 0);
    if (room > 0) this.#withRoom.set(w, room);
    else this.#withRoom.delete(w);
  }

  /** ListWorkers' view of one worker. */
  static info(w: WorkerEntry): WorkerInfo {
    return create(WorkerInfoSchema, {
      workerId: w.id,
      name: w.name,
      version: w.version,
      engines: [...w.engines].map(engineFromName),
      slots: w.slots,
      slotsInUse: w.leases.size,
      jobIds: [...w.leases.values()],
      cachedSha256: [...w.cached],
      lastHeartbeatTime: timestampFromMs(w.lastHeartbeat),
      connectTime: timestampFromMs(w.connectTime),
      draining: w.draining,
      labels: { ...w.labels },
      gpus: w.gpus?.info() ?? [],
    });
  }
}
