import type { EngineName } from "../../contract/names.js";
import type { Task } from "../../gen/studio/v1/job_pb.js";
import type { HttpResponse } from "../http/http-routes.js";
import { JobError } from "../jobs/job-errors.js";
import type { JobRow } from "../jobs/job-row.js";
import { RegistryError } from "../registry/registry-errors.js";
import type { OpenAiDeps } from "./api-deps.js";
import { OpenAiError } from "./openai-errors.js";

/** What a request asks of a model's engine. */
export type TaskKind = "text" | "image";

const MAKES: Record<EngineName, readonly TaskKind[]> = {
  "llama-cpp": ["text"],
  "sd-cpp": ["image"],
  synthetic: ["text", "image"],
};

const ENDPOINTS: Record<TaskKind, string> = {
  text: "POST /v1/chat/completions or /v1/completions",
  image: "POST /v1/images/generations",
};

/**
 * The model a request names, checked before any job is written: 404 model_not_found when the
 * registry has no such name, 400 naming why when it is disabled, its stored source is broken, or
 * its engine cannot do what the endpoint asks.
 */
export async function checkModel(deps: OpenAiDeps, model: string, kind: TaskKind): Promise<void> {
  let engine: EngineName;
  try {
    engine = (await deps.registry.resolve(model)).engine;
  } catch (err) {
    if (!(err instanceof RegistryError)) throw err;
    throw modelError(err, model);
  }
  if (!MAKES[engine].includes(kind)) {
    const other = MAKES[engine][0]!;
    throw new OpenAiError(
      400,
      "invalid_request_error",
      `model ${JSON.stringify(model)} runs ${engine}, which makes ${other === "text" ? "text" : "images"}, not ${kind === "text" ? "text" : "images"}: use ${ENDPOINTS[other]}`,
      "model_not_supported",
      "model",
    );
  }
}

function modelError(err: RegistryError, model: string): OpenAiError {
  switch (err.code) {
    case "model_not_found":
    case "invalid_model_name":
      return new OpenAiError(404, "invalid_request_error", `The model ${JSON.stringify(model)} does not exist (GET /v1/models lists the models)`, "model_not_found", "model");
    case "model_disabled":
      return new OpenAiError(400, "invalid_request_error", `model ${JSON.stringify(model)} is disabled: an admin can enable it (studio models enable)`, "model_disabled", "model");
    default:
      return new OpenAiError(400, "invalid_request_error", `model ${JSON.stringify(model)} cannot run jobs now: ${err.message}`, "model_unavailable", "model");
  }
}

/** Queues the request's job; a registry change since checkModel, or a task rule, is a 400 naming the model. */
export async function createJob(deps: OpenAiDeps, model: string, task: Task): Promise<JobRow> {
  try {
    return await deps.createJob({ model, task });
  } catch (err) {
    if (!(err instanceof JobError)) throw err;
    const code = err.code === "model_unavailable" ? "model_unavailable" : "invalid_value";
    throw new OpenAiError(400, "invalid_request_error", err.message, code, err.code === "model_unavailable" ? "model" : null);
  }
}

/** The 503 of a job that no worker took in time (it was cancelled, so it will not run later for nobody). */
export async function unclaimedError(deps: OpenAiDeps, row: JobRow, waitedMs: number): Promise<OpenAiError> {
  const why = await deps.describeWait?.(row).catch(() => undefined);
  return new OpenAiError(
    503,
    "server_error",
    `no worker took job ${row.id} (model ${JSON.stringify(row.model)}) within ${formatWait(waitedMs)}${why ? `: ${why}` : ""}; the job was cancelled, try again later`,
    "no_worker_available",
    null,
    { "retry-after": String(Math.max(1, Math.ceil(waitedMs / 1000 / 4))) },
  );
}

/**
 * The error of a job that ended without succeeding. The studio already retried it as its
 * max_attempts allowed, so the SDKs are told not to send it again (x-should-retry: false).
 */
export function jobEndedError(row: JobRow): OpenAiError {
  const noRetry = { "x-should-retry": "false" };
  if (row.status === "CANCELLED")
    return new OpenAiError(500, "server_error", `job ${row.id} was cancelled before it finished${row.error ? `: ${row.error}` : ""}`, "job_cancelled", null, noRetry);
  return new OpenAiError(500, "server_error", `job ${row.id} failed after ${row.attempts} attempt(s): ${row.error || "no error recorded"}`, "job_failed", null, noRetry);
}

function formatWait(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 100) / 10} s` : `${ms} ms`;
}

/**
 * Cancels a job nobody waits for any more (the client went away, the wait ran out). A job that
 * already ended cannot be cancelled, which is fine; anything else is logged.
 */
export function cancelQuietly(deps: OpenAiDeps, jobId: string, why: string): void {
  deps.cancelJob(jobId).then(
    () => deps.logger.info({ jobId, why }, "OpenAI API: job cancelled"),
    (err) => {
      if (err instanceof JobError && err.code === "wrong_state") return;
      deps.logger.warn({ jobId, err }, "OpenAI API: could not cancel the job");
    },
  );
}

/**
 * Runs `fn` when the client goes away before the response was finished (the connection closed or
 * the HTTP/2 stream was reset); `finished()` says whether it was.
 */
export function onClientGone(res: HttpResponse, finished: () => boolean, fn: () => void): void {
  res.once("close", () => {
    if (!finished()) fn();
  });
}
