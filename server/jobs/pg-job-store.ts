import { and, desc, eq, inArray, lt, or, sql, type SQL } from "drizzle-orm";
import type { PgDb, PgQuery } from "../db/pg/pg-db.js";
import { jobRowOf } from "../db/pg/rows.js";
import { graphicsJobs, studioModels } from "../db/pg/schema.js";
import type { JobEvents } from "../events/job-events.js";
import { RegistryError } from "../registry/registry-errors.js";
import { resolveModelRow, type ResolvedModel } from "../registry/model-registry.js";
import { JobError, jobNotFound, wrongState } from "./job-errors.js";
import { taskFromJson, taskToJson, type JobRow } from "./job-row.js";
import type { CancelResult, CreateOutcome, JobFilter, JobPage, JobStore, NewJob } from "./job-store.js";
import { checkCancellable, checkRetryable, checkRetryFitsEngine, checkSameRequest, checkTaskFitsEngine } from "./job-write-rules.js";
import type { ListCursor } from "./list-cursor.js";

export interface PgJobStoreDeps {
  db: PgDb;
  events: JobEvents;
  now: () => number;
  newId?: () => string;
}


/** The columns a new job's row is inserted with, as json_to_recordset reads them. */
interface NewRow {
  id: string;
  model: string;
  engine: string;
  priority: number;
  task: string;
  modelSource: string;
  vramBytes: number | null;
  maxAttempts: number;
  idempotencyKey: string | null;
  promotedFrom: string | null;
  createdAt: number;
}

/**
 * JobStore on PostgreSQL. A batch of creates is a few statements in one transaction
 * whatever its size: the idempotency keys and the models it names are read at once,
 * each create is checked in order in memory (a later one seeing an earlier one's key),
 * and the new rows go in with one INSERT ... SELECT FROM json_to_recordset. A key
 * another replica inserted meanwhile (ON CONFLICT DO NOTHING) is read back and judged
 * like any existing key. Changes are published after commit; the other replicas hear
 * of them from the table's trigger.
 */
export class PgJobStore implements JobStore {
  readonly #d: PgJobStoreDeps;
  readonly #newId: () => string;

  constructor(deps: PgJobStoreDeps) {
    this.#d = deps;
    this.#newId = deps.newId ?? (() => Bun.randomUUIDv7());
  }

  async get(id: string): Promise<JobRow | undefined> {
    return getRow(this.#d.db, id);
  }

  async list(filter: JobFilter, { pageSize, after }: { pageSize: number; after?: ListCursor }): Promise<JobPage> {
    const where: SQL[] = [];
    if (filter.statuses?.length) where.push(inArray(graphicsJobs.status, [...filter.statuses]));
    if (filter.model) where.push(eq(graphicsJobs.model, filter.model));
    if (after)
      where.push(
        or(lt(graphicsJobs.createdAt, after.createdAt), and(eq(graphicsJobs.createdAt, after.createdAt), lt(graphicsJobs.id, after.id)))!,
      );
    const rows = (await this.#d.db.orm
      .select()
      .from(graphicsJobs)
      .where(where.length ? and(...where) : undefined)
      .orderBy(desc(graphicsJobs.createdAt), desc(graphicsJobs.id))
      .limit(pageSize + 1)) as JobRow[];
    if (rows.length <= pageSize) return { rows };
    const page = rows.slice(0, pageSize);
    const last = page[page.length - 1]!;
    return { rows: page, next: { createdAt: last.createdAt, id: last.id } };
  }

  async create(input: NewJob): Promise<{ row: JobRow; created: boolean }> {
    const [outcome] = await this.createBatch([input]);
    if ("error" in outcome!) throw outcome.error;
    return outcome!;
  }

  async createBatch(inputs: readonly NewJob[]): Promise<CreateOutcome[]> {
    if (inputs.length === 0) return [];
    const outcomes = await this.#d.db.tx((q) => this.#createAll(q, inputs));
    for (const o of outcomes) if ("row" in o && o.created) this.#publish(o.row);
    return outcomes;
  }

  async #createAll(q: PgQuery, inputs: readonly NewJob[]): Promise<CreateOutcome[]> {
    const keys = [...new Set(inputs.flatMap((i) => (i.idempotencyKey ? [i.idempotencyKey] : [])))];
    const byKey = new Map<string, JobRow>();
    if (keys.length > 0)
      for (const row of await q.rows(
        sql`SELECT * FROM "graphicsJobs" WHERE "idempotencyKey" IN (SELECT json_array_elements_text(${JSON.stringify(keys)}::text::json))`,
      ))
        byKey.set(row.idempotencyKey as string, jobRowOf(row));
    const resolve = await this.#resolver(q, inputs.map((i) => i.model));

    const at = this.#d.now();
    const outcomes: (CreateOutcome | { pending: NewRow; input: NewJob })[] = [];
    const fresh: NewRow[] = [];
    const freshByKey = new Map<string, NewRow>();
    for (const input of inputs) {
      try {
        const key = input.idempotencyKey || null;
        const existing = key ? byKey.get(key) : undefined;
        if (existing) {
          checkSameRequest(existing, input, key!);
          outcomes.push({ row: existing, created: false });
          continue;
        }
        const earlier = key ? freshByKey.get(key) : undefined;
        if (earlier) {
          checkSameRequest(pendingRow(earlier), input, key!);
          outcomes.push({ pending: earlier, input });
          continue;
        }
        const resolved = resolve(input.model);
        checkTaskFitsEngine(resolved, input.task, "task");
        const row: NewRow = {
          id: this.#newId(),
          model: input.model,
          engine: resolved.engine,
          priority: input.priority,
          task: taskToJson(input.task),
          modelSource: resolved.sourceJson,
          vramBytes: resolved.vramBytes,
          maxAttempts: input.maxAttempts,
          idempotencyKey: key,
          promotedFrom: null,
          createdAt: at,
        };
        fresh.push(row);
        if (key) freshByKey.set(key, row);
        outcomes.push({ pending: row, input });
      } catch (error) {
        outcomes.push({ error });
      }
    }
    const inserted = new Map((await insertRows(q, fresh)).map((r) => [r.id, r]));
    // A key another replica committed after our read: its row decides, as an existing key would.
    const raced = fresh.filter((r) => !inserted.has(r.id) && r.idempotencyKey !== null);
    const theirs = new Map<string, JobRow>();
    if (raced.length > 0)
      for (const row of await q.rows(
        sql`SELECT * FROM "graphicsJobs" WHERE "idempotencyKey" IN (SELECT json_array_elements_text(${JSON.stringify(raced.map((r) => r.idempotencyKey))}::text::json))`,
      ))
        theirs.set(row.idempotencyKey as string, jobRowOf(row));
    return outcomes.map((o): CreateOutcome => {
      if (!("pending" in o)) return o;
      const mine = inserted.get(o.pending.id);
      if (mine) return { row: mine, created: isFirstFor(o, outcomes) };
      const other = o.pending.idempotencyKey ? theirs.get(o.pending.idempotencyKey) : undefined;
      if (!other) return { error: new Error(`job ${o.pending.id} was neither inserted nor found by its idempotency key`) };
      try {
        checkSameRequest(other, o.input, o.pending.idempotencyKey!);
        return { row: other, created: false };
      } catch (error) {
        return { error };
      }
    });
  }

  async promote(jobId: string, model: string, priority: number): Promise<JobRow> {
    const row = await this.#d.db.tx(async (q) => {
      const original = await getRow(q, jobId);
      if (!original) throw jobNotFound(jobId);
      const resolved = (await this.#resolver(q, [model]))(model);
      // The stored task is re-serialised so that a legacy row's unparsable task is refused, not copied.
      const task = taskFromJson(original.task);
      if (task.kind.case === undefined)
        throw new JobError("invalid_request", `job_id: job ${JSON.stringify(jobId)} has no readable task to promote`);
      checkTaskFitsEngine(resolved, task, "model");
      const [made] = await insertRows(q, [
        {
          id: this.#newId(),
          model,
          engine: resolved.engine,
          priority,
          task: taskToJson(task),
          modelSource: resolved.sourceJson,
          vramBytes: resolved.vramBytes,
          maxAttempts: original.maxAttempts,
          idempotencyKey: null,
          promotedFrom: original.id,
          createdAt: this.#d.now(),
        },
      ]);
      return made!;
    });
    this.#publish(row);
    return row;
  }

  async retry(jobId: string): Promise<JobRow> {
    const row = await this.#d.db.tx(async (q) => {
      const current = await getRow(q, jobId, true);
      if (!current) throw jobNotFound(jobId);
      checkRetryable(current);
      const resolved = (await this.#resolver(q, [current.model]))(current.model);
      checkRetryFitsEngine(resolved, current);
      const [updated] = await q.rows(
        sql`UPDATE "graphicsJobs" SET "status" = 'QUEUED', "engine" = ${resolved.engine}, "modelSource" = ${resolved.sourceJson},
              "vramBytes" = ${resolved.vramBytes}, "attempts" = 0, "error" = '', "outputs" = '[]', "progress" = NULL, "leaseId" = NULL, "leaseExpiresAt" = NULL,
              "leaseWorker" = NULL, "finishedAt" = NULL, "updatedAt" = ${this.#d.now()}
            WHERE "id" = ${jobId} AND "status" = ${current.status} RETURNING *`,
      );
      if (!updated) throw wrongState(jobId, "changing", "try again");
      return jobRowOf(updated);
    });
    this.#publish(row);
    return row;
  }

  async cancel(jobId: string): Promise<CancelResult> {
    const result = await this.#d.db.tx(async (q) => {
      const current = await getRow(q, jobId, true);
      if (!current) throw jobNotFound(jobId);
      checkCancellable(current);
      const at = this.#d.now();
      const [row] = await q.rows(
        sql`UPDATE "graphicsJobs" SET "status" = 'CANCELLED', "leaseId" = NULL, "leaseExpiresAt" = NULL, "leaseWorker" = NULL,
              "finishedAt" = ${at}, "updatedAt" = ${at}
            WHERE "id" = ${jobId} AND "status" = ${current.status}
              AND ${current.leaseId === null ? sql`"leaseId" IS NULL` : sql`"leaseId" = ${current.leaseId}`}
            RETURNING *`,
      );
      if (!row) throw wrongState(jobId, "changing", "try again");
      return { row: jobRowOf(row), previousLeaseWorker: current.leaseWorker, previousLeaseId: current.leaseId };
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

  /** Reads the registry rows of the named models in the write's transaction; the returned function resolves one name. */
  async #resolver(q: PgQuery, names: readonly string[]): Promise<(name: string) => ResolvedModel> {
    const distinct = [...new Set(names)];
    const rows = await q.rows<{ name: string; enabled: boolean; source: string }>(
      sql`SELECT "name", "enabled", "source" FROM ${studioModels}
          WHERE "name" IN (SELECT json_array_elements_text(${JSON.stringify(distinct)}::text::json))`,
    );
    const byName = new Map(rows.map((r) => [r.name, r]));
    return (name) => {
      try {
        return resolveModelRow(name, byName.get(name));
      } catch (err) {
        if (err instanceof RegistryError) throw new JobError("model_unavailable", `model: ${err.message}`);
        throw err;
      }
    };
  }

  #publish(row: JobRow): void {
    this.#d.events.publish({ jobId: row.id, status: row.status, model: row.model, job: row });
  }
}

/** Whether a pending create is the first of its batch for its key (later ones with the same key are answers, not creates). */
function isFirstFor(o: { pending: NewRow; input: NewJob }, outcomes: readonly unknown[]): boolean {
  for (const x of outcomes) if (typeof x === "object" && x !== null && "pending" in x && (x as { pending: NewRow }).pending === o.pending) return x === o;
  return true;
}

/** What a pending row will read as once inserted, for an idempotency check against it. */
function pendingRow(r: NewRow): JobRow {
  return {
    ...r,
    status: "QUEUED",
    attempts: 0,
    leaseId: null,
    leaseExpiresAt: null,
    leaseWorker: null,
    error: "",
    outputs: "[]",
    progress: null,
    updatedAt: r.createdAt,
    finishedAt: null,
  };
}

async function getRow(q: PgQuery, id: string, forUpdate = false): Promise<JobRow | undefined> {
  const [row] = await q.rows(sql`SELECT * FROM "graphicsJobs" WHERE "id" = ${id} ${forUpdate ? sql`FOR UPDATE` : sql``}`);
  return row ? jobRowOf(row) : undefined;
}

/** Inserts new QUEUED rows in one statement; a row whose idempotency key exists is skipped (not returned). */
async function insertRows(q: PgQuery, rows: readonly NewRow[]): Promise<JobRow[]> {
  if (rows.length === 0) return [];
  const inserted = await q.rows(
    sql`INSERT INTO "graphicsJobs" ("id", "model", "engine", "status", "priority", "task", "modelSource", "vramBytes", "attempts", "maxAttempts",
          "idempotencyKey", "promotedFrom", "createdAt", "updatedAt")
        SELECT r."id", r."model", r."engine", 'QUEUED', r."priority", r."task", r."modelSource", r."vramBytes", 0, r."maxAttempts",
          r."idempotencyKey", r."promotedFrom", r."createdAt", r."createdAt"
        FROM json_to_recordset(${JSON.stringify(rows)}::text::json) AS r("id" text, "model" text, "engine" text, "priority" integer,
          "task" text, "modelSource" text, "vramBytes" bigint, "maxAttempts" integer, "idempotencyKey" text, "promotedFrom" text, "createdAt" bigint)
        ON CONFLICT ("idempotencyKey") WHERE "idempotencyKey" IS NOT NULL DO NOTHING
        RETURNING *`,
  );
  // RETURNING follows no order; callers look rows up by id, and batches keep input order themselves.
  return inserted.map(jobRowOf);
}
