import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { WorkerInfoSchema, type WorkerInfo } from "../../gen/studio/v1/worker_service_pb.js";
import type { Logger } from "../log.js";
import type { Cluster } from "../storage/pg-cluster.js";
import type { Dispatcher } from "./dispatcher.js";
import { WorkerRegistry } from "./worker-registry.js";

export interface ReplicaSyncOptions {
  /** How often this replica's worker list is written for the others (when it changed; at least every 2 intervals). */
  publishIntervalMs?: number;
  /**
   * How often placement runs without being asked: a lost notification (a job created on
   * another replica while the connection was down) never strands a queued job for longer.
   */
  sweepIntervalMs?: number;
}

/**
 * Dispatch's side of running beside other replicas on one database: placement wakes when
 * the notifications come back after a gap and on a slow timer (the safety sweep), this
 * replica's workers are published for ListWorkers on every replica, and ListWorkers adds
 * the other replicas' workers to this one's.
 */
export class ReplicaSync {
  readonly #publishMs: number;
  readonly #sweepMs: number;
  #timers: ReturnType<typeof setInterval>[] = [];
  #unsubscribe: (() => void) | undefined;
  #last = "";
  #lastAt = 0;

  constructor(
    readonly deps: { cluster: Cluster; registry: WorkerRegistry; dispatcher: Dispatcher; logger: Logger },
    { publishIntervalMs = 1000, sweepIntervalMs = 2000 }: ReplicaSyncOptions = {},
  ) {
    this.#publishMs = publishIntervalMs;
    this.#sweepMs = sweepIntervalMs;
  }

  start(): void {
    this.#unsubscribe = this.deps.cluster.onResync(() => this.deps.dispatcher.wake());
    this.#timers.push(setInterval(() => this.deps.dispatcher.wake(), this.#sweepMs));
    this.#timers.push(setInterval(() => void this.publish(), this.#publishMs));
    void this.publish();
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    this.#unsubscribe?.();
  }

  /** Writes this replica's workers when they changed (or were last written long ago). */
  async publish(force = false): Promise<void> {
    const list = this.deps.registry.all().map((w) => toJson(WorkerInfoSchema, WorkerRegistry.info(w)));
    const text = JSON.stringify(list);
    // Unchanged lists are written every other interval, so a live replica's row is never older than the others' cut-off (5 s).
    if (!force && text === this.#last && Date.now() - this.#lastAt < 2 * this.#publishMs) return;
    try {
      await this.deps.cluster.publishWorkers(list);
      this.#last = text;
      this.#lastAt = Date.now();
    } catch (err) {
      this.deps.logger.warn({ err }, "could not publish this replica's workers");
    }
  }

  /** This replica's workers, then the other live replicas'. */
  async listWorkers(): Promise<WorkerInfo[]> {
    const local = this.deps.registry.all().map(WorkerRegistry.info);
    const others = await this.deps.cluster.otherWorkers();
    const seen = new Set(local.map((w) => w.workerId));
    const remote: WorkerInfo[] = [];
    for (const replica of others)
      for (const json of replica.workers) {
        const info = fromJson(WorkerInfoSchema, json as JsonValue, { ignoreUnknownFields: true });
        if (!seen.has(info.workerId)) remote.push(info);
      }
    return [...local, ...remote];
  }
}
