import type { JobProgress } from "../../gen/studio/v1/job_pb.js";
import type { ModelFile, ModelSource } from "../../gen/studio/v1/model_pb.js";
import type { Engine } from "../engines/types.js";
import type { LiveSession } from "../session/session-client.js";

/** Download progress as the download manager reports it. */
export interface DownloadProgressEvent {
  bytesDone: number;
  bytesTotal?: number;
  /** Bytes per second. */
  rate?: number;
  /** False while some file has no sha256 to check against. */
  verified?: boolean;
}

/** A file held in the cache for a job (the blob's path, linked into the job dir); release() lets eviction have it again. */
export interface HeldFile {
  path: string;
  release(): void | Promise<void>;
}

/** What the job runner needs from the download manager (worker/download). */
export interface Downloads<F extends HeldFile = HeldFile> {
  ensureAll(
    files: ModelFile[],
    options: { signal: AbortSignal; onProgress?: (p: DownloadProgressEvent) => void },
  ): Promise<F[]>;
  cachedDigests(): Promise<Iterable<string>> | Iterable<string>;
  /** URLs of complete files cached without a digest (placement of models whose files carry no sha256). */
  cachedUrls(): Promise<Iterable<string>> | Iterable<string>;
  /** Marks the cached copies of files as just used (the LRU's order) for a job that did not go through ensureAll. */
  touchCached(files: ModelFile[]): Promise<void>;
}

/** What the job runner needs from the engines (worker/engines MultiEngine). */
export interface EngineRouter {
  route(model: string, source: ModelSource | undefined): Engine;
}

/** Where the runner finds the session to talk on; a reconnect hands out a new one. */
export interface SessionSource {
  readonly session: LiveSession | undefined;
  waitForSession(signal?: AbortSignal): Promise<LiveSession>;
}

/** How a job ended on this worker. */
export type JobOutcome =
  | "succeeded"
  | "failed"
  | "declined"
  | "cancelled"
  | "lease-lost"
  | "refused"
  | "abandoned"
  | "shutdown";

/** What the terminal or the log shows about jobs (worker/ui). */
export interface JobView {
  started(jobId: string, model: string, engine: string): void;
  progress(jobId: string, progress: JobProgress): void;
  finished(jobId: string, outcome: JobOutcome, message?: string): void;
}
