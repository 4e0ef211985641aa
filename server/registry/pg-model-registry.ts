import { asc, eq, sql } from "drizzle-orm";
import type { Model } from "../../gen/studio/v1/model_pb.js";
import type { PgDb } from "../db/pg/pg-db.js";
import { studioModels } from "../db/pg/schema.js";
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

/** The registry on PostgreSQL: each write one statement, conditional where it must be (a name is taken once). */
export class PgModelRegistry implements ModelRegistry {
  constructor(
    private readonly db: PgDb,
    private readonly now: () => number,
  ) {}

  async list({ enabledOnly = false }: { enabledOnly?: boolean } = {}): Promise<Model[]> {
    const q = this.db.orm.select().from(studioModels);
    const rows = await (enabledOnly ? q.where(eq(studioModels.enabled, true)) : q).orderBy(asc(studioModels.name));
    return rows.map(modelFromRow);
  }

  async get(name: string): Promise<Model> {
    const [row] = await this.db.orm.select().from(studioModels).where(eq(studioModels.name, name));
    if (!row) throw modelNotFound(name);
    return modelFromRow(row);
  }

  async create(input: CreateModelInput): Promise<Model> {
    const values = newModelRow(input, this.now());
    const [row] = await this.db.orm.insert(studioModels).values(values).onConflictDoNothing({ target: studioModels.name }).returning();
    if (!row) throw modelExists(input.name);
    return modelFromRow(row);
  }

  async update(name: string, input: UpdateModelInput): Promise<Model> {
    return this.#change(name, modelChanges(input));
  }

  async setEnabled(name: string, enabled: boolean): Promise<Model> {
    return this.#change(name, { enabled });
  }

  async delete(name: string): Promise<void> {
    const gone = await this.db.orm.delete(studioModels).where(eq(studioModels.name, name)).returning({ name: studioModels.name });
    if (gone.length === 0) throw modelNotFound(name);
  }

  async resolve(name: string): Promise<ResolvedModel> {
    const [row] = await this.db.rows<{ name: string; enabled: boolean; source: string }>(
      sql`SELECT "name", "enabled", "source" FROM "studioModels" WHERE "name" = ${name}`,
    );
    return resolveModelRow(name, row);
  }

  async #change(name: string, set: Partial<Omit<ModelRow, "name" | "createdAt">>): Promise<Model> {
    const [row] = await this.db.orm
      .update(studioModels)
      .set({ ...set, updatedAt: this.now() })
      .where(eq(studioModels.name, name))
      .returning();
    if (!row) throw modelNotFound(name);
    return modelFromRow(row);
  }
}
