import type { Task } from "../../gen/studio/v1/job_pb.js";
import type { JobEvents } from "../events/job-events.js";
import type { JobRow } from "../jobs/job-row.js";
import type { Logger } from "../log.js";
import type { ModelRegistry } from "../registry/model-registry.js";
import type { TextFeed } from "../streams/text-feed.js";

/** What the OpenAI-compatible API needs from the rest of the studio (server/openai/index.ts wires it). */
export interface OpenAiDeps {
  registry: ModelRegistry;
  /** Queues a job exactly as CreateJob does (same validation, defaults and events); throws JobError. */
  createJob(input: { model: string; task: Task }): Promise<JobRow>;
  /** CancelJob's write: the worker holding the job is told to stop. */
  cancelJob(jobId: string): Promise<void>;
  getJob(jobId: string): Promise<JobRow | undefined>;
  /** One committed output's bytes, from the job's row as read when it ended. */
  readOutput(row: JobRow, index: number): Promise<{ mimeType: string; data: Uint8Array }>;
  events: JobEvents;
  texts?: TextFeed;
  /** How long a request waits for some worker to take its job before answering 503. */
  waitMs: number;
  /** Why a queued job has no worker yet, for the 503's message (best effort). */
  describeWait?(row: JobRow): Promise<string | undefined>;
  logger: Logger;
  /** The studio's own scheme, for the URLs of image outputs. */
  scheme: "http" | "https";
}
