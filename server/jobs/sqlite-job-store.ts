import { and, desc, eq, inArray, lt, or, type SQL } from "drizzle-orm";
import type { JobEvents } from "../events/job-events.js";
import { immediate, type StudioDb } from "../db/open.js";
import { graphicsJobs } from "../db/schema.js";
import { RegistryError } from "../registry/registry-errors.js";
import type { ResolvedModel } from "../registry/model-registry.js";
import { JobError, jobNotFound, wrongState } from "./job-errors.js";
import { checkCancellable, checkRetryable, checkRetryFitsEngine, checkSameRequest, checkTaskFitsEngine } from "./job-write-rules.js";
import { taskFromJson, taskToJson, type JobRow } from "./job-row.js";
import type { CancelResult, CreateOutcome, JobFilter, JobPage, JobStore, NewJob } from "./job-store.js";
import type { ListCursor } from "./list-cursor.js";

export interface SqliteJobStoreDeps {
  db: StudioDb;
  events: JobEvents;
  now: () => number;
  /** The registry's resolve: throws RegistryError for a missing or disabled model. */
  resolveModel: (name: string) => ResolvedModel;
  newId?: () => string;
}


/** JobStore on the studio's SQLite file: every write one BEGIN IMMEDIATE transaction. */
export class SqliteJobStore implements JobStore {
  readonly #d: SqliteJobStoreDeps;
  readonly #newId: () => string;

  constructor(deps: SqliteJobStoreDeps) {
    this.#d = deps;
    this.#newId = deps.newId ?? (() => Bun.randomUUIDv7());
  }

  async get(id: string): Promise<JobRow | undefined> {
    return this.#get(id);
  }

  #get(id: string): JobRow | undefined {
    return this.#d.db.sqlite.query<JobRow, [string]>("SELECT * FROM graphicsJobs WHERE id = ?").get(id) ?? undefined;
  }

  async list(filter: JobFilter, { pageSize, after }: { pageSize: number; after?: ListCursor }): Promise<JobPage> {
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

  async create(input: NewJob): Promise<{ row: JobRow; created: boolean }> {
    const result = immediate(this.#d.db, () => this.#createInTransaction(input));
    if (result.created) this.#publish(result.row);
    return result;
  }

  /**
   * Several creates in one transaction (CreateBatcher gathers those of one turn), committed at
   * once rather than in the group commit of the turn after: a create is the start of a job's way
   * to its worker, and a turn later is a turn of latency. A create writes one INSERT after its
   * checks, so a refused one (a JobError, or a statement SQLite rolled back) has changed nothing and
   * is reported in its place; no savepoint each is needed. Changes are published after the commit;
   * if the commit fails, the whole call throws and nothing is published.
   */
  async createBatch(inputs: readonly NewJob[]): Promise<CreateOutcome[]> {
    const outcomes = immediate(this.#d.db, () =>
      inputs.map((input): CreateOutcome => {
        try {
          return this.#createInTransaction(input);
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

  async promote(jobId: string, model: string, priority: number): Promise<JobRow> {
    const row = immediate(this.#d.db, () => {
      const original = this.#get(jobId);
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

  async retry(jobId: string): Promise<JobRow> {
    const row = immediate(this.#d.db, () => {
      const current = this.#get(jobId);
      if (!current) throw jobNotFound(jobId);
      checkRetryable(current);
      const resolved = this.#resolve(current.model);
      checkRetryFitsEngine(resolved, current);
      const updated = this.#d.db.orm
        .update(graphicsJobs)
        .set({
          status: "QUEUED",
          engine: resolved.engine,
          modelSource: resolved.sourceJson,
          vramBytes: resolved.vramBytes,
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

  async cancel(jobId: string): Promise<CancelResult> {
    const result = immediate(this.#d.db, () => {
      const current = this.#get(jobId);
      if (!current) throw jobNotFound(jobId);
      checkCancellable(current);
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
        `INSERT INTO graphicsJobs (id, model, engine, status, priority, task, modelSource, vramBytes, attempts, maxAttempts,
           idempotencyKey, promotedFrom, createdAt, updatedAt)
         VALUES (?, ?, ?, 'QUEUED', ?, ?, ?, ?, 0, ?, ?, ?, ?, ?) RETURNING *`,
      )
      .get(this.#newId(), model, resolved.engine, priority, task, resolved.sourceJson, resolved.vramBytes, maxAttempts, idempotencyKey, promotedFrom, at, at)!;
  }

  #publish(row: JobRow): void {
    this.#d.events.publish({ jobId: row.id, status: row.status, model: row.model, job: row });
  }
}
