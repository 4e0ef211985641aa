import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { randomBytes } from "node:crypto";
import { engineFromName, type EngineName } from "../../contract/names.js";
import { WorkerInfoSchema, type SessionResponse, type WorkerInfo } from "../../gen/studio/v1/worker_service_pb.js";

/** Most cached digests the studio remembers per worker. */
export const MAX_CACHED_DIGESTS = 4096;
/** Most cached URLs (files downloaded without a digest) the studio remembers per worker. */
export const MAX_CACHED_URLS = 1024;

/** One connected streaming worker, as dispatch sees it. */
export interface WorkerEntry {
  id: string;
  name: string;
  version: string;
  engines: Set<EngineName>;
  slots: number;
  /** Live leases: lease id → job id. */
  leases: Map<string, string>;
  /** sha256 digests of the verified files in the worker's cache. */
  cached: Set<string>;
  /** URLs of complete files it cached without a digest, for sources whose files carry no sha256. */
  cachedUrls: Set<string>;
  labels: Record<string, string>;
  tokenId: string;
  connectTime: number;
  lastHeartbeat: number;
  lastOfferAt: number;
  draining: boolean;
  /** Pushes a message down the worker's stream; false once the stream closed. */
  send(message: SessionResponse): boolean;
  /** Ends the worker's stream from the studio's side (shutdown); its leases stay for a reconnect. */
  end(): void;
}

/** The connected workers, in memory: placement, cancel routing and ListWorkers read it. */
export class WorkerRegistry {
  readonly #workers = new Map<string, WorkerEntry>();

  /** A fresh worker id. */
  static newId(): string {
    return `w_${randomBytes(8).toString("hex")}`;
  }

  add(worker: WorkerEntry): void {
    this.#workers.set(worker.id, worker);
  }

  remove(workerId: string): WorkerEntry | undefined {
    const w = this.#workers.get(workerId);
    this.#workers.delete(workerId);
    return w;
  }

  get(workerId: string): WorkerEntry | undefined {
    return this.#workers.get(workerId);
  }

  all(): WorkerEntry[] {
    return [...this.#workers.values()];
  }

  /** The worker holding a lease, if it is connected. */
  holderOf(leaseId: string): WorkerEntry | undefined {
    for (const w of this.#workers.values()) if (w.leases.has(leaseId)) return w;
    return undefined;
  }

  /** Forgets a lease wherever it is held; returns the worker that held it. */
  release(leaseId: string): WorkerEntry | undefined {
    const w = this.holderOf(leaseId);
    w?.leases.delete(leaseId);
    return w;
  }

  /** Workers that may take another offer: not draining, a slot free. */
  free(): WorkerEntry[] {
    return this.all().filter((w) => !w.draining && w.leases.size < w.slots);
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
    });
  }
}
