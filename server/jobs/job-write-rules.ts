import { formatIssues } from "../../contract/issues.js";
import { loraTagIssues } from "../../contract/lora-tags.js";
import type { Task } from "../../gen/studio/v1/job_pb.js";
import type { ResolvedModel } from "../registry/model-registry.js";
import { JobError, wrongState } from "./job-errors.js";
import { taskFromJson, taskToJson, type JobRow } from "./job-row.js";
import type { NewJob } from "./job-store.js";

/**
 * A retried CreateJob with the same key must be the same request: returning the old job for a
 * different one would tell the caller its new request was queued when it was not.
 */
export function checkSameRequest(existing: JobRow, input: NewJob, key: string): void {
  const differs: string[] = [];
  if (existing.model !== input.model) differs.push(`model (${JSON.stringify(existing.model)}, now ${JSON.stringify(input.model)})`);
  if (existing.task !== taskToJson(input.task) && !sameTaskButSeed(existing.task, input)) differs.push("task");
  if (existing.priority !== input.priority) differs.push(`priority (${existing.priority}, now ${input.priority})`);
  if (existing.maxAttempts !== input.maxAttempts) differs.push(`max_attempts (${existing.maxAttempts}, now ${input.maxAttempts})`);
  if (differs.length === 0) return;
  throw new JobError(
    "idempotency_conflict",
    `idempotency_key: ${JSON.stringify(key)} already names job ${JSON.stringify(existing.id)}, made from a different request: ` +
      `its ${differs.join(", ")} differ${differs.length === 1 ? "s" : ""}; use a new key for a new request`,
  );
}

/** The stored task equals the requested one once the studio-chosen seed is put aside. */
export function sameTaskButSeed(stored: string, input: NewJob): boolean {
  if (!input.seedChosen || input.task.kind.case !== "image") return false;
  const task = taskFromJson(stored);
  if (task.kind.case !== "image") return false;
  task.kind.value.seed = input.task.kind.value.seed;
  return taskToJson(task) === taskToJson(input.task);
}

/**
 * An sd-cpp model makes images and a llama-cpp model text (synthetic does both): a task of the
 * other kind could never succeed, so it is refused at the edge instead of failing on a worker.
 */
export function checkTaskFitsEngine(resolved: ResolvedModel, task: Task, path: "task" | "model"): void {
  const mismatch = taskEngineMismatch(resolved, task);
  if (mismatch) throw new JobError("invalid_request", `${path}: ${mismatch}`);
  const lora = loraMismatch(resolved, task);
  if (lora) throw new JobError("invalid_request", lora);
}

/** Only an ended job that did not succeed (FAILED or CANCELLED) can be retried. */
export function checkRetryable(current: JobRow): void {
  if (current.status !== "FAILED" && current.status !== "CANCELLED")
    throw wrongState(current.id, current.status, "only FAILED or CANCELLED jobs can be retried");
}

/** Only a job that has not ended (QUEUED, OFFERED or RUNNING) can be cancelled. */
export function checkCancellable(current: JobRow): void {
  if (current.status !== "QUEUED" && current.status !== "OFFERED" && current.status !== "RUNNING")
    throw wrongState(current.id, current.status, "only QUEUED, OFFERED or RUNNING jobs can be cancelled");
}

/**
 * The model may run another engine since the job was written, and a retry keeps the task: one
 * that no longer fits is refused (FAILED_PRECONDITION), pointing to PromoteJob instead.
 */
export function checkRetryFitsEngine(resolved: ResolvedModel, current: JobRow): void {
  const task = taskFromJson(current.task);
  const mismatch = taskEngineMismatch(resolved, task);
  if (mismatch)
    throw new JobError("wrong_state", `model: ${mismatch}; a retry keeps the task: promote job ${JSON.stringify(current.id)} to a model that takes it`);
  const lora = loraMismatch(resolved, task);
  if (lora) throw new JobError("wrong_state", `${lora}; a retry keeps the task: promote job ${JSON.stringify(current.id)} to a model that has those LoRA files`);
}

/** Why the model's engine cannot run the task, or undefined when it can. */
function taskEngineMismatch(resolved: ResolvedModel, task: Task): string | undefined {
  const wants = resolved.engine === "sd-cpp" ? "image" : resolved.engine === "llama-cpp" ? "text" : undefined;
  const kind = task.kind.case;
  if (wants === undefined || kind === undefined || kind === wants) return undefined;
  return `model ${JSON.stringify(resolved.name)} runs ${resolved.engine}, which takes ${wants} tasks (got ${kind === "image" ? "an" : "a"} ${kind} task)`;
}

/** LoRA tags may only name the model's own LoRA files: refused at the edge rather than on a worker. */
function loraMismatch(resolved: ResolvedModel, task: Task): string | undefined {
  if (task.kind.case !== "image" || resolved.engine !== "sd-cpp") return undefined;
  const issues = loraTagIssues(task.kind.value, resolved.source, "task.image");
  return issues.length ? `${formatIssues(issues)} (model ${JSON.stringify(resolved.name)})` : undefined;
}
