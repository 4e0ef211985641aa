import { asc, eq } from "drizzle-orm";
import type { Model } from "../../gen/studio/v1/model_pb.js";
import { immediate, type StudioDb } from "../db/open.js";
import { studioModels } from "../db/schema.js";
import {
  modelChanges,
  modelFromRow,
  resolveModelRow,
  newModelRow,
  type CreateModelInput,
  type ModelRegistry,
  type ModelRow,
  type ResolvedModel,
  type UpdateModelInput,
} from "./model-registry.js";
import { modelExists, modelNotFound } from "./registry-errors.js";

/**
 * The registry on the studio's SQLite file: every write one immediate transaction.
 * resolveSync lets the SQLite job store resolve inside its own transaction.
 */
export class SqliteModelRegistry implements ModelRegistry {
  constructor(
    private readonly db: StudioDb,
    private readonly now: () => number,
  ) {}

  async list({ enabledOnly = false }: { enabledOnly?: boolean } = {}): Promise<Model[]> {
    const q = this.db.orm.select().from(studioModels);
    const rows = enabledOnly
      ? q.where(eq(studioModels.enabled, true)).orderBy(asc(studioModels.name)).all()
      : q.orderBy(asc(studioModels.name)).all();
    return rows.map(modelFromRow);
  }

  async get(name: string): Promise<Model> {
    const row = this.#find(name);
    if (!row) throw modelNotFound(name);
    return modelFromRow(row);
  }

  async create(input: CreateModelInput): Promise<Model> {
    const values = newModelRow(input, this.now());
    return immediate(this.db, () => {
      if (this.#find(input.name)) throw modelExists(input.name);
      return modelFromRow(this.db.orm.insert(studioModels).values(values).returning().get());
    });
  }

  async update(name: string, input: UpdateModelInput): Promise<Model> {
    return this.#change(name, modelChanges(input));
  }

  async setEnabled(name: string, enabled: boolean): Promise<Model> {
    return this.#change(name, { enabled });
  }

  async delete(name: string): Promise<void> {
    immediate(this.db, () => {
      const gone = this.db.orm.delete(studioModels).where(eq(studioModels.name, name)).returning().get();
      if (!gone) throw modelNotFound(name);
    });
  }

  async resolve(name: string): Promise<ResolvedModel> {
    return this.resolveSync(name);
  }

  /** resolve, synchronously: safe to call inside a transaction on the same file. */
  resolveSync(name: string): ResolvedModel {
    // Every CreateJob resolves: one cached prepared statement, and the row (never a cache) decides.
    const row = this.db.sqlite
      .query<{ name: string; enabled: number; source: string }, [string]>(
        "SELECT name, enabled, source FROM studioModels WHERE name = ?",
      )
      .get(name);
    return resolveModelRow(name, row);
  }

  #find(name: string): ModelRow | undefined {
    return this.db.orm.select().from(studioModels).where(eq(studioModels.name, name)).get();
  }

  #change(name: string, set: Partial<Omit<ModelRow, "name" | "createdAt">>): Model {
    const at = this.now();
    return immediate(this.db, () => {
      const row = this.db.orm
        .update(studioModels)
        .set({ ...set, updatedAt: at })
        .where(eq(studioModels.name, name))
        .returning()
        .get();
      if (!row) throw modelNotFound(name);
      return modelFromRow(row);
    });
  }
}
