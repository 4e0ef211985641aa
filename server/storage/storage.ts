import type { TokenStore } from "../auth/token-store.js";
import type { StudioDb } from "../db/open.js";
import type { PgDb } from "../db/pg/pg-db.js";
import type { QueueStore } from "../dispatch/queue-store.js";
import type { JobStore } from "../jobs/job-store.js";
import type { OutputBlobs } from "../outputs/output-blobs.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import type { TextStore } from "../streams/text-store.js";
import type { Cluster } from "./pg-cluster.js";

/** Which database holds the studio's state. */
export type Dialect = "sqlite" | "postgres";

/** What the metrics gauges read on each scrape. */
export interface QueueStats {
  /** Jobs by stored status. */
  jobCounts(): Promise<{ status: string; n: number }[]>;
  /** Queued jobs per model, with the oldest one's createdAt. */
  queuedByModel(): Promise<{ model: string; n: number; oldest: number }[]>;
}

/**
 * Every store of the studio on one database: the registry, the jobs (clients' side),
 * the queue (workers' side), tokens, and the output bytes. app.ts opens one per
 * process (open-storage.ts picks SQLite or PostgreSQL from the configuration) and
 * the modules take their store from it, so no module knows which database it runs on.
 */
export interface Storage {
  readonly dialect: Dialect;
  readonly registry: ModelRegistry;
  readonly jobs: JobStore;
  readonly queue: QueueStore;
  readonly tokens: TokenStore;
  /** Stored output bytes, content-addressed. */
  readonly blobs: OutputBlobs;
  readonly stats: QueueStats;
  /** Text jobs' streamed output so far (server/streams). */
  readonly texts: TextStore;
  /** Why the studio cannot serve now (database unreachable, not writable, not migrated), or undefined. */
  readiness(): Promise<string | undefined>;
  /** The other replicas sharing the database (PostgreSQL); undefined when this process is the only one (SQLite). */
  readonly cluster?: Cluster;
  /** The SQLite handle, for tools and tests that read the file directly; undefined on PostgreSQL. */
  readonly sqlite?: StudioDb;
  /** The PostgreSQL handle, for tools and tests; undefined on SQLite. */
  readonly pg?: PgDb;
  /** Closes the database (after every module stopped). */
  close(): Promise<void>;
}

/** The storage could not be opened (database unreachable, refused, or migrated by a newer studio); the message is one line, without secrets. */
export class StorageOpenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StorageOpenError";
  }
}
