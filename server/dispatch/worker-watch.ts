import { create, toBinary } from "@bufbuild/protobuf";
import {
  WatchWorkersResponseSchema,
  WorkerInfoSchema,
  type WatchWorkersResponse,
  type WorkerInfo,
} from "../../gen/studio/v1/worker_service_pb.js";
import type { JobEvents } from "../events/job-events.js";

export interface WorkerWatchOptions {
  /** How often the worker list is read while someone watches. */
  intervalMs?: number;
  /** The shortest gap between two reads, however often job changes ask for one. */
  minGapMs?: number;
}

/** One read of the worker list: each worker with a fingerprint of everything ListWorkers says about it. */
interface Reading {
  workers: Map<string, { info: WorkerInfo; print: string }>;
}

/**
 * WatchWorkers for every stream at once. While anyone watches, it reads the worker list (the
 * same list ListWorkers answers with: this replica's workers and the other replicas' as they
 * publish them) about once a second, and sooner when a job changes hands (a slot filled or
 * freed), at most once per `minGapMs`. Each stream remembers what it last sent of each worker
 * and sends only the workers whose facts changed and the ids of those that left, so a slow
 * reader skips intermediate states instead of piling them up. Nothing runs while nobody watches,
 * and nothing is added to the dispatch paths: the job bus is already published.
 */
export class WorkerWatchHub {
  readonly #list: () => Promise<WorkerInfo[]>;
  readonly #events: JobEvents;
  readonly #intervalMs: number;
  readonly #minGapMs: number;
  readonly #watchers = new Set<() => void>();
  #latest: Reading | undefined;
  #reading: Promise<void> | undefined;
  #again = false;
  #lastReadAt = 0;
  #interval: ReturnType<typeof setInterval> | undefined;
  #soon: ReturnType<typeof setTimeout> | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(list: () => Promise<WorkerInfo[]>, events: JobEvents, { intervalMs = 1000, minGapMs = 250 }: WorkerWatchOptions = {}) {
    this.#list = list;
    this.#events = events;
    this.#intervalMs = intervalMs;
    this.#minGapMs = minGapMs;
  }

  /** The stream of one watcher: a snapshot, then batches of changes, until the signal aborts. */
  async *watch(signal: AbortSignal): AsyncGenerator<WatchWorkersResponse> {
    let wake: (() => void) | undefined;
    let woken = false;
    const notify = () => {
      woken = true;
      wake?.();
    };
    const onAbort = () => wake?.();
    signal.addEventListener("abort", onAbort);
    this.#join(notify);
    let sent: Map<string, string> | undefined;
    try {
      // The first reading after joining is this stream's snapshot.
      await this.#read();
      while (!signal.aborted) {
        const reading = this.#latest;
        if (reading) {
          const message = sent === undefined ? snapshotOf(reading) : changesSince(sent, reading);
          sent = new Map([...reading.workers].map(([id, w]) => [id, w.print]));
          if (message) yield message;
        }
        if (!woken) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        woken = false;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.#leave(notify);
    }
  }

  /** Stops reading (studio shutdown); open streams end when their signals abort. */
  close(): void {
    for (const w of this.#watchers) w();
    this.#watchers.clear();
    this.#stopTimers();
  }

  #join(watcher: () => void) {
    this.#watchers.add(watcher);
    if (this.#watchers.size > 1) return;
    this.#interval = setInterval(() => void this.#read(), this.#intervalMs);
    this.#unsubscribe = this.#events.subscribe((change) => {
      // A job taken, finished or handed back moves a worker's slots and job list.
      if (change.status !== "RUNNING") this.#readSoon();
    });
  }

  #leave(watcher: () => void) {
    this.#watchers.delete(watcher);
    if (this.#watchers.size === 0) this.#stopTimers();
  }

  #stopTimers() {
    clearInterval(this.#interval);
    clearTimeout(this.#soon);
    this.#interval = this.#soon = undefined;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  #readSoon() {
    if (this.#soon !== undefined) return;
    const wait = Math.max(0, this.#lastReadAt + this.#minGapMs - performance.now());
    this.#soon = setTimeout(() => {
      this.#soon = undefined;
      void this.#read();
    }, wait);
  }

  /** Reads the list once (reads asked for while one runs coalesce into one more) and wakes every watcher. */
  #read(): Promise<void> {
    if (this.#reading) {
      this.#again = true;
      return this.#reading;
    }
    this.#reading = (async () => {
      do {
        this.#again = false;
        this.#lastReadAt = performance.now();
        try {
          const list = await this.#list();
          const workers = new Map(list.map((info) => [info.workerId, { info, print: fingerprint(info) }]));
          this.#latest = { workers };
        } catch {
          // A failed read (another replica's list unreachable) keeps the last one; the next tick tries again.
        }
        for (const w of this.#watchers) w();
      } while (this.#again && this.#watchers.size > 0);
    })().finally(() => (this.#reading = undefined));
    return this.#reading;
  }
}

/** Everything a worker's row shows, as one comparable string. */
function fingerprint(info: WorkerInfo): string {
  return Buffer.from(toBinary(WorkerInfoSchema, info)).toString("latin1");
}

function snapshotOf(reading: Reading): WatchWorkersResponse {
  return create(WatchWorkersResponseSchema, { workers: [...reading.workers.values()].map((w) => w.info), snapshot: true });
}

/** The workers that are new or changed since `sent`, and those that left; undefined when nothing did. */
function changesSince(sent: Map<string, string>, reading: Reading): WatchWorkersResponse | undefined {
  const workers: WorkerInfo[] = [];
  for (const [id, w] of reading.workers) if (sent.get(id) !== w.print) workers.push(w.info);
  const removedWorkerIds = [...sent.keys()].filter((id) => !reading.workers.has(id));
  if (workers.length === 0 && removedWorkerIds.length === 0) return undefined;
  return create(WatchWorkersResponseSchema, { workers, removedWorkerIds, snapshot: false });
}
