import { and, desc, eq, inArray, lt, or, type SQL } from "drizzle-orm";
import type { JobEvents } from "../events/job-events.js";
import { immediate, type StudioDb } from "../db/open.js";
import { graphicsJobs } from "../db/schema.js";
import { RegistryError } from "../registry/registry-errors.js";
import type { ResolvedModel } from "../registry/model-registry.js";
import { JobError, jobNotFound, wrongState } from "./job-errors.js";
import { taskFromJson, taskToJson, type JobRow, type JobStatusName } from "./job-row.js";
import type { CancelResult, CreateOutcome, JobFilter, JobPage, JobStore, NewJob } from "./job-store.js";
import type { ListCursor } from "./list-cursor.js";
import type { Task } from "../../gen/studio/v1/job_pb.js";

export interface SqliteJobStoreDeps {
  db: StudioDb;
  events: JobEvents;
  now: () => number;
  /** The registry's resolve: throws RegistryError for a missing or disabled model. */
  resolveModel: (name: string) => ResolvedModel;
  newId?: () => string;
}

const RETRYABLE: JobStatusName[] = ["FAILED", "CANCELLED"];
const CANCELLABLE: JobStatusName[] = ["QUEUED", "OFFERED", "RUNNING"];

/** JobStore on the studio's SQLite file: every write one BEGIN IMMEDIATE transaction. */
export class SqliteJobStore implements JobStore {
  readonly #d: SqliteJobStoreDeps;
  readonly #newId: () => string;

  constructor(deps: SqliteJobStoreDeps) {
    this.#d = deps;
    this.#newId = deps.newId ?? (() => Bun.randomUUIDv7());
  }

  get(id: string): JobRow | undefined {
    return this.#d.db.sqlite.query<JobRow, [string]>("SELECT * FROM graphicsJobs WHERE id = ?").get(id) ?? undefined;
  }

  list(filter: JobFilter, { pageSize, after }: { pageSize: number; after?: ListCursor }): JobPage {
    const where: SQL[] = [];
    if (filter.statuses?.length) where.push(inArray(graphicsJobs.status, [...filter.statuses]));
    if (filter.model) where.push(eq(graphicsJobs.model, filter.model));
    if (after)
      where.push(
        or(
          lt(graphicsJobs.createdAt, after.createdAt),
          and(eq(graphicsJobs.createdAt, after.createdAt), lt(graphicsJobs.id, after.id)),
        )!,
      );
    const rows = this.#d.db.orm
      .select()
      .from(graphicsJobs)
      .where(where.length ? and(...where) : undefined)
      .orderBy(desc(graphicsJobs.createdAt), desc(graphicsJobs.id))
      .limit(pageSize + 1)
      .all();
    if (rows.length <= pageSize) return { rows };
    const page = rows.slice(0, pageSize);
    const last = page[page.length - 1]!;
    return { rows: page, next: { createdAt: last.createdAt, id: last.id } };
  }

  create(input: NewJob): { row: JobRow; created: boolean } {
    const result = immediate(this.#d.db, () => this.#createInTransaction(input));
    if (result.created) this.#publish(result.row);
    return result;
  }

  /**
   * Several creates in one transaction (one commit): each runs in its own savepoint, so a refused
   * one (a JobError or any other error) is rolled back alone and reported in its place. Changes are
   * published after the commit; if the commit fails, the whole call throws and nothing is published.
   */
  createBatch(inputs: readonly NewJob[]): CreateOutcome[] {
    // Called inside the immediate transaction, bun:sqlite runs each as a SAVEPOINT.
    const inSavepoint = this.#d.db.sqlite.transaction((input: NewJob) => this.#createInTransaction(input));
    const outcomes = immediate(this.#d.db, () =>
      inputs.map((input): CreateOutcome => {
        try {
          return inSavepoint(input);
        } catch (error) {
          return { error };
        }
      }),
    );
    for (const o of outcomes) if ("row" in o && o.created) this.#publish(o.row);
    return outcomes;
  }

  #createInTransaction(input: NewJob): { row: JobRow; created: boolean } {
    const key = input.idempotencyKey || null;
    if (key) {
      const existing = this.#d.db.sqlite.query<JobRow, [string]>("SELECT * FROM graphicsJobs WHERE idempotencyKey = ?").get(key);
      if (existing) {
        checkSameRequest(existing, input, key);
        return { row: existing, created: false };
      }
    }
    const resolved = this.#resolve(input.model);
    checkTaskFitsEngine(resolved, input.task, "task");
    return { row: this.#insert(input.model, resolved, taskToJson(input.task), input.priority, input.maxAttempts, key, null), created: true };
  }

  promote(jobId: string, model: string, priority: number): JobRow {
    const row = immediate(this.#d.db, () => {
      const original = this.get(jobId);
      if (!original) throw jobNotFound(jobId);
      const resolved = this.#resolve(model);
      // The stored task is re-serialised so that a legacy row's unparsable task is refused, not copied.
      const task = taskFromJson(original.task);
      if (task.kind.case === undefined)
        throw new JobError("invalid_request", `job_id: job ${JSON.stringify(jobId)} has no readable task to promote`);
      checkTaskFitsEngine(resolved, task, "model");
      return this.#insert(model, resolved, taskToJson(task), priority, original.maxAttempts, null, original.id);
    });
    this.#publish(row);
    return row;
  }

  retry(jobId: string): JobRow {
    const row = immediate(this.#d.db, () => {
      const current = this.get(jobId);
      if (!current) throw jobNotFound(jobId);
      if (!RETRYABLE.includes(current.status as JobStatusName))
        throw wrongState(jobId, current.status, "only FAILED or CANCELLED jobs can be retried");
      const resolved = this.#resolve(current.model);
      // The model may run another engine since the job was written: a retry keeps the task, so it must still fit.
      const mismatch = taskEngineMismatch(resolved, taskFromJson(current.task));
      if (mismatch)
        throw new JobError("wrong_state", `model: ${mismatch}; a retry keeps the task: promote job ${JSON.stringify(jobId)} to a model that takes it`);
      const updated = this.#d.db.orm
        .update(graphicsJobs)
        .set({
          status: "QUEUED",
          engine: resolved.engine,
          modelSource: resolved.sourceJson,
          attempts: 0,
          error: "",
          outputs: "[]",
          progress: null,
          leaseId: null,
          leaseExpiresAt: null,
          leaseWorker: null,
          finishedAt: null,
          updatedAt: this.#d.now(),
        })
        .where(and(eq(graphicsJobs.id, jobId), eq(graphicsJobs.status, current.status)))
        .returning()
        .get();
      if (!updated) throw wrongState(jobId, "changing", "try again");
      return updated;
    });
    this.#publish(row);
    return row;
  }

  cancel(jobId: string): CancelResult {
    const result = immediate(this.#d.db, () => {
      const current = this.get(jobId);
      if (!current) throw jobNotFound(jobId);
      if (!CANCELLABLE.includes(current.status as JobStatusName))
        throw wrongState(jobId, current.status, "only QUEUED, OFFERED or RUNNING jobs can be cancelled");
      const at = this.#d.now();
      const leaseMatch = current.leaseId === null ? undefined : eq(graphicsJobs.leaseId, current.leaseId);
      const row = this.#d.db.orm
        .update(graphicsJobs)
        .set({ status: "CANCELLED", leaseId: null, leaseExpiresAt: null, leaseWorker: null, finishedAt: at, updatedAt: at })
        .where(and(eq(graphicsJobs.id, jobId), eq(graphicsJobs.status, current.status), leaseMatch))
        .returning()
        .get();
      if (!row) throw wrongState(jobId, "changing", "try again");
      return { row, previousLeaseWorker: current.leaseWorker, previousLeaseId: current.leaseId };
    });
    this.#d.events.publish({
      jobId: result.row.id,
      status: result.row.status,
      model: result.row.model,
      leaseWorker: result.previousLeaseWorker,
      leaseId: result.previousLeaseId,
      job: result.row,
    });
    return result;
  }

  #resolve(model: string): ResolvedModel {
    try {
      return this.#d.resolveModel(model);
    } catch (err) {
      if (err instanceof RegistryError) throw new JobError("model_unavailable", `model: ${err.message}`);
      throw err;
    }
  }

  #insert(
    model: string,
    resolved: ResolvedModel,
    task: string,
    priority: number,
    maxAttempts: number,
    idempotencyKey: string | null,
    promotedFrom: string | null,
  ): JobRow {
    const at = this.#d.now();
    // CreateJob's hot path: one cached prepared statement (bun:sqlite caches db.query by its text).
    return this.#d.db.sqlite
      .query<JobRow, (string | number | null)[]>(
        `INSERT INTO graphicsJobs (id, model, engine, status, priority, task, modelSource, attempts, maxAttempts,
           idempotencyKey, promotedFrom, createdAt, updatedAt)
         VALUES (?, ?, ?, 'QUEUED', ?, ?, ?, 0, ?, ?, ?, ?, ?) RETURNING *`,
      )
      .get(this.#newId(), model, resolved.engine, priority, task, resolved.sourceJson, maxAttempts, idempotencyKey, promotedFrom, at, at)!;
  }

  #publish(row: JobRow): void {
    this.#d.events.publish({ jobId: row.id, status: row.status, model: row.model, job: row });
  }
}

/**
 * A retried CreateJob with the same key must be the same request: returning the old job for a
 * different one would tell the caller its new request was queued when it was not.
 */
function checkSameRequest(existing: JobRow, input: NewJob, key: string): void {
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
function sameTaskButSeed(stored: string, input: NewJob): boolean {
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
function checkTaskFitsEngine(resolved: ResolvedModel, task: Task, path: "task" | "model"): void {
  const mismatch = taskEngineMismatch(resolved, task);
  if (mismatch) throw new JobError("invalid_request", `${path}: ${mismatch}`);
}

/** Why the model's engine cannot run the task, or undefined when it can. */
function taskEngineMismatch(resolved: ResolvedModel, task: Task): string | undefined {
  const wants = resolved.engine === "sd-cpp" ? "image" : resolved.engine === "llama-cpp" ? "text" : undefined;
  const kind = task.kind.case;
  if (wants === undefined || kind === undefined || kind === wants) return undefined;
  return `model ${JSON.stringify(resolved.name)} runs ${resolved.engine}, which takes ${wants} tasks (got ${kind === "image" ? "an" : "a"} ${kind} task)`;
}
