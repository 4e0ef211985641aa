import { create, fromJson, fromJsonString, toJson, toJsonString, type JsonValue } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { sharedModelSourceFromStored } from "../../contract/model-source.js";
import {
  JobOutputSchema,
  JobProgressSchema,
  JobSchema,
  JobStatus,
  TaskSchema,
  type Job,
  type JobOutput,
  type JobProgress,
  type Task,
} from "../../gen/studio/v1/job_pb.js";
import { isFinal } from "../../contract/job-progress.js";
import { vramRequirementOf } from "../../contract/vram.js";
import type { graphicsJobs } from "../db/schema.js";

/** One `graphicsJobs` row as drizzle reads it. */
export type JobRow = typeof graphicsJobs.$inferSelect;

/** The status names rows store, one per JobStatus value (UNSPECIFIED is never stored). */
export const JOB_STATUS_NAMES = ["QUEUED", "OFFERED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"] as const;
export type JobStatusName = (typeof JOB_STATUS_NAMES)[number];

/** Whether text is a stored status name. */
export function isStatusName(name: string): name is JobStatusName {
  return (JOB_STATUS_NAMES as readonly string[]).includes(name);
}

/** The stored name of a status (its proto enum name); throws for UNSPECIFIED and unknown values, which are never stored. */
export function statusToRow(status: JobStatus): JobStatusName {
  const name = JobStatus[status];
  if (name === undefined || !isStatusName(name)) throw new RangeError(`job status ${status} has no stored name`);
  return name;
}

/** The proto status of a stored name; UNSPECIFIED for text this build does not know (never throws). */
export function statusFromRow(name: string): JobStatus {
  return isStatusName(name) ? JobStatus[name] : JobStatus.UNSPECIFIED;
}

/** A stored status a job never leaves on its own (only RetryJob moves FAILED and CANCELLED): the contract's isFinal. */
export function isFinalStatusName(name: string): boolean {
  return isFinal(statusFromRow(name));
}

/** The stored text of a task: protobuf JSON. */
export function taskToJson(task: Task): string {
  return toJsonString(TaskSchema, task);
}

/** Reads a stored task; an empty Task (no kind) for malformed text, never throws. */
export function taskFromJson(text: string | null | undefined): Task {
  if (typeof text !== "string" || text === "") return create(TaskSchema);
  try {
    return fromJsonString(TaskSchema, text, { ignoreUnknownFields: true });
  } catch {
    return create(TaskSchema);
  }
}

/** Most created tasks kept for their first claim (the newest; older jobs' tasks are parsed when claimed). */
const MAX_CREATED_TASKS = 10_000;
/**
 * Tasks as CreateJob wrote them, by job id, until the job is first leased: the claim builds its
 * Offer from the message instead of parsing back the text just stored (measured: 2.4% of the
 * studio's CPU on the dispatch bench). A task never changes after its job is created; the messages
 * here are only serialised, never changed.
 */
const createdTasks = new Map<string, Task>();

/** Keeps a created job's task for its first claim. */
export function rememberCreatedTask(jobId: string, task: Task): void {
  if (createdTasks.size >= MAX_CREATED_TASKS) createdTasks.delete(createdTasks.keys().next().value!);
  createdTasks.set(jobId, task);
}

/** The task of a row being leased: the one kept at creation (once), else parsed from the row. */
export function leasedTaskOf(row: JobRow): Task {
  const task = createdTasks.get(row.id);
  if (task === undefined) return taskFromJson(row.task);
  createdTasks.delete(row.id);
  return task;
}

/** The stored text of a job's outputs: a JSON array of protobuf-JSON JobOutputs. */
export function outputsToJson(outputs: readonly JobOutput[]): string {
  return JSON.stringify(outputs.map((o) => toJson(JobOutputSchema, o)));
}

/** Reads stored outputs; skips entries that do not parse, [] for malformed text; never throws. */
export function outputsFromJson(text: string | null | undefined): JobOutput[] {
  if (typeof text !== "string" || text === "" || text === "[]") return [];
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(raw)) return [];
  const out: JobOutput[] = [];
  for (const item of raw) {
    try {
      out.push(fromJson(JobOutputSchema, item as JsonValue, { ignoreUnknownFields: true }));
    } catch {
      // A malformed entry is left out rather than failing the whole read.
    }
  }
  return out;
}

/** The stored text of a job's progress: protobuf JSON. */
export function progressToJson(progress: JobProgress): string {
  return toJsonString(JobProgressSchema, progress);
}

/** Reads stored progress; undefined for NULL or malformed text, never throws. */
export function progressFromJson(text: string | null | undefined): JobProgress | undefined {
  if (typeof text !== "string" || text === "") return undefined;
  try {
    return fromJsonString(JobProgressSchema, text, { ignoreUnknownFields: true });
  } catch {
    return undefined;
  }
}

const clampUint32 = (n: number) => (Number.isFinite(n) ? Math.min(Math.max(Math.trunc(n), 0), 0xffffffff) : 0);

/**
 * The proto Job for a row. Defensive on every stored JSON column: a NULL or
 * malformed `modelSource` (a legacy row) reads back with no model_source, and
 * nothing here throws on stored data. A caller that has just written the row
 * passes the task it stored (`known.task`, whose protobuf JSON is `row.task`)
 * so that the text is not parsed straight back. The Job is for sending: its model_source is the
 * message shared by every job of that stored text (sharedModelSourceFromStored), not to be changed.
 */
export function jobFromRow(row: JobRow, known?: { task?: Task }): Job {
  const modelSource = sharedModelSourceFromStored(row.modelSource);
  return create(JobSchema, {
    id: row.id,
    model: row.model,
    status: statusFromRow(row.status),
    priority: Math.trunc(row.priority) | 0,
    task: known?.task ?? taskFromJson(row.task),
    modelSource,
    vram: vramRequirementOf(modelSource),
    attempts: clampUint32(row.attempts),
    maxAttempts: clampUint32(row.maxAttempts),
    error: row.error ?? "",
    outputs: outputsFromJson(row.outputs),
    progress: progressFromJson(row.progress),
    idempotencyKey: row.idempotencyKey ?? "",
    workerName: row.leaseWorker ?? "",
    promotedFrom: row.promotedFrom ?? "",
    createTime: timestampFromMs(row.createdAt),
    updateTime: timestampFromMs(row.updatedAt),
    finishTime: row.finishedAt == null ? undefined : timestampFromMs(row.finishedAt),
    leaseExpireTime: row.leaseExpiresAt == null ? undefined : timestampFromMs(row.leaseExpiresAt),
  });
}
