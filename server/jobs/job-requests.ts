import { clone } from "@bufbuild/protobuf";
import { formatIssues, type ValidationIssue } from "../../contract/issues.js";
import { taskIssues } from "../../contract/task.js";
import { JobStatus, TaskSchema, type Task } from "../../gen/studio/v1/job_pb.js";
import type { CreateJobRequest } from "../../gen/studio/v1/job_service_pb.js";
import { modelNameProblem } from "../../contract/model-doc.js";
import { JobError } from "./job-errors.js";
import { statusToRow, type JobStatusName } from "./job-row.js";
import type { NewJob } from "./job-store.js";

/** Client priorities are bounded so that PromoteJob's priority stays meaningful. */
export const PRIORITY_RANGE = { min: -1000, max: 1000 } as const;

/**
 * The priority PromoteJob gives its new job at least: well above the normal 0, so a
 * promoted job runs ahead of everything queued at default priority. A promoted job
 * whose original had a higher priority gets one more than the original (capped at the maximum).
 */
export const PROMOTED_PRIORITY = 100;

/** The largest max_attempts a request may ask for. */
export const MAX_ATTEMPTS_LIMIT = 100;

export const MAX_IDEMPOTENCY_KEY_LENGTH = 256;

/** Image seeds the studio picks are below 2^31, which every engine's seed argument accepts. */
export const RANDOM_SEED_LIMIT = 2 ** 31;

const invalid = (issues: ValidationIssue[]) => new JobError("invalid_request", formatIssues(issues));

/** The model-name issue of a request field, if any. */
export function modelIssues(model: string, path = "model"): ValidationIssue[] {
  const why = modelNameProblem(model);
  return why ? [{ path, message: why }] : [];
}

/**
 * Validates a CreateJob request and turns it into a NewJob: every issue named by
 * field in one JobError("invalid_request"); max_attempts 0 becomes the default;
 * an image task without a seed gets a random one, recorded on the job.
 */
export function newJobFromRequest(
  req: CreateJobRequest,
  { defaultMaxAttempts, randomSeed = randomImageSeed }: { defaultMaxAttempts: number; randomSeed?: () => bigint },
): NewJob {
  const issues = [...modelIssues(req.model), ...taskIssues(req.task, "task")];
  if (req.priority < PRIORITY_RANGE.min || req.priority > PRIORITY_RANGE.max)
    issues.push({ path: "priority", message: `must be from ${PRIORITY_RANGE.min} to ${PRIORITY_RANGE.max} (got ${req.priority})` });
  if (req.maxAttempts > MAX_ATTEMPTS_LIMIT)
    issues.push({ path: "max_attempts", message: `must be from 0 (the default) to ${MAX_ATTEMPTS_LIMIT} (got ${req.maxAttempts})` });
  if (req.idempotencyKey.length > MAX_IDEMPOTENCY_KEY_LENGTH)
    issues.push({
      path: "idempotency_key",
      message: `must be at most ${MAX_IDEMPOTENCY_KEY_LENGTH} characters (got ${req.idempotencyKey.length})`,
    });
  if (issues.length) throw invalid(issues);
  return {
    model: req.model,
    task: withSeed(req.task!, randomSeed),
    priority: req.priority,
    maxAttempts: req.maxAttempts === 0 ? defaultMaxAttempts : req.maxAttempts,
    idempotencyKey: req.idempotencyKey || undefined,
    seedChosen: req.task!.kind.case === "image" && req.task!.kind.value.seed === undefined,
  };
}

/** The priority of a job promoted from one with originalPriority. */
export function promotedPriority(originalPriority: number): number {
  return Math.min(PRIORITY_RANGE.max, Math.max(PROMOTED_PRIORITY, originalPriority + 1));
}

/** Stored status names for a request's status filter; INVALID_ARGUMENT for UNSPECIFIED or unknown values. */
export function statusFilter(statuses: readonly JobStatus[], path = "statuses"): JobStatusName[] {
  const issues: ValidationIssue[] = [];
  const names = statuses.flatMap((s, i) => {
    try {
      return [statusToRow(s)];
    } catch {
      issues.push({ path: `${path}[${i}]`, message: `must be a job status other than UNSPECIFIED (got ${s})` });
      return [];
    }
  });
  if (issues.length) throw invalid(issues);
  return [...new Set(names)];
}

/** Throws JobError("invalid_request") when a required id field is empty. */
export function requireId(value: string, path: string): void {
  if (value === "") throw invalid([{ path, message: "must not be empty" }]);
  if (value.length > 128) throw invalid([{ path, message: `must be at most 128 characters (got ${value.length})` }]);
}

function withSeed(task: Task, randomSeed: () => bigint): Task {
  if (task.kind.case !== "image" || task.kind.value.seed !== undefined) return task;
  const seeded = clone(TaskSchema, task);
  if (seeded.kind.case === "image") seeded.kind.value.seed = randomSeed();
  return seeded;
}

function randomImageSeed(): bigint {
  return BigInt(crypto.getRandomValues(new Uint32Array(1))[0]! % RANDOM_SEED_LIMIT);
}
