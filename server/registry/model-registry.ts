import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { asc, eq } from "drizzle-orm";
import { modelSourceProblem, parseModelSourceJson, validateModelSource, modelSourceToJsonText } from "../../contract/model-source.js";
import { engineName, type EngineName } from "../../contract/names.js";
import { ModelSchema, type Model, type ModelSource } from "../../gen/studio/v1/model_pb.js";
import { immediate, type StudioDb } from "../db/open.js";
import { studioModels } from "../db/schema.js";
import { checkModelName } from "./model-name.js";
import { modelDisabled, modelExists, modelNotFound, modelSourceInvalid, RegistryError } from "./registry-errors.js";

type ModelRow = typeof studioModels.$inferSelect;

/** A model resolved for a job: what the job row stores at write time. */
export interface ResolvedModel {
  name: string;
  engine: EngineName;
  /** Parsed once per stored text and shared between resolutions: read it, never change it. */
  source: ModelSource;
  /** The ModelSource wire JSON as stored on the registry row (already validated). */
  sourceJson: string;
}

export interface CreateModelInput {
  name: string;
  source: ModelSource | undefined;
  description?: string;
  enabled?: boolean;
}

export interface UpdateModelInput {
  source?: ModelSource;
  description?: string;
}

/** Most distinct parsed source texts ModelRegistry keeps (one per model version in use). */
const MAX_PARSED_SOURCES = 1024;

/** The longest description the registry stores. */
export const MAX_DESCRIPTION_LENGTH = 4096;

/**
 * The registry: the single source of truth for what a model name means. Every
 * write validates the source with the contract's rules (InvalidModelSourceError)
 * and runs in one immediate transaction; misses are RegistryErrors with a code.
 * Methods are synchronous so that job writes can resolve inside their own transaction.
 */
export class ModelRegistry {
  /** Parsed sources by their stored JSON text: resolve reads the row every time, and parses a text once. */
  readonly #parsed = new Map<string, { engine: EngineName; source: ModelSource }>();

  constructor(
    private readonly db: StudioDb,
    private readonly now: () => number,
  ) {}

  list({ enabledOnly = false }: { enabledOnly?: boolean } = {}): Model[] {
    const q = this.db.orm.select().from(studioModels);
    const rows = enabledOnly
      ? q.where(eq(studioModels.enabled, true)).orderBy(asc(studioModels.name)).all()
      : q.orderBy(asc(studioModels.name)).all();
    return rows.map(modelFromRow);
  }

  /** The model, or a RegistryError("model_not_found"). */
  get(name: string): Model {
    return modelFromRow(this.#row(name));
  }

  create(input: CreateModelInput): Model {
    checkModelName(input.name);
    const source = validateModelSource(input.source, "source");
    const description = checkDescription(input.description ?? "");
    const at = this.now();
    return immediate(this.db, () => {
      if (this.#find(input.name)) throw modelExists(input.name);
      const row = this.db.orm
        .insert(studioModels)
        .values({
          name: input.name,
          enabled: input.enabled ?? true,
          engine: engineOf(source),
          source: modelSourceToJsonText(source),
          description,
          createdAt: at,
          updatedAt: at,
        })
        .returning()
        .get();
      return modelFromRow(row);
    });
  }

  update(name: string, input: UpdateModelInput): Model {
    const source = input.source === undefined ? undefined : validateModelSource(input.source, "source");
    const description = input.description === undefined ? undefined : checkDescription(input.description);
    return this.#change(name, {
      ...(source ? { engine: engineOf(source), source: modelSourceToJsonText(source) } : {}),
      ...(description !== undefined ? { description } : {}),
    });
  }

  setEnabled(name: string, enabled: boolean): Model {
    return this.#change(name, { enabled });
  }

  /** Deletes the row. Jobs already written keep the source they resolved. */
  delete(name: string): void {
    immediate(this.db, () => {
      const gone = this.db.orm.delete(studioModels).where(eq(studioModels.name, name)).returning().get();
      if (!gone) throw modelNotFound(name);
    });
  }

  /**
   * What a job for this name runs, as of now: RegistryError "model_not_found" or
   * "model_disabled" when no job may use it. Safe to call inside a transaction.
   */
  resolve(name: string): ResolvedModel {
    // Every CreateJob resolves: one cached prepared statement, and the row (never a cache) decides.
    const row = this.db.sqlite
      .query<{ name: string; enabled: number; source: string }, [string]>(
        "SELECT name, enabled, source FROM studioModels WHERE name = ?",
      )
      .get(name);
    if (!row) throw modelNotFound(name);
    if (!row.enabled) throw modelDisabled(name);
    let parsed = this.#parsed.get(row.source);
    if (!parsed) {
      const source = parseModelSourceJson(row.source);
      if (!source) throw modelSourceInvalid(name);
      parsed = { engine: engineOf(source), source };
      if (this.#parsed.size >= MAX_PARSED_SOURCES) this.#parsed.clear();
      this.#parsed.set(row.source, parsed);
    }
    return { name: row.name, engine: parsed.engine, source: parsed.source, sourceJson: row.source };
  }

  #find(name: string): ModelRow | undefined {
    return this.db.orm.select().from(studioModels).where(eq(studioModels.name, name)).get();
  }

  #row(name: string): ModelRow {
    const row = this.#find(name);
    if (!row) throw modelNotFound(name);
    return row;
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

function engineOf(source: ModelSource): EngineName {
  const name = engineName(source.engine);
  if (!name) throw new RangeError(`engine ${source.engine} has no name`); // validateModelSource rules this out
  return name;
}

function checkDescription(description: string): string {
  if (description.length > MAX_DESCRIPTION_LENGTH)
    throw new RegistryError(
      "invalid_description",
      "",
      `description: must be at most ${MAX_DESCRIPTION_LENGTH} characters (got ${description.length})`,
    );
  return description;
}

/**
 * The proto Model for a row. A source that no longer parses reads back unset rather than throwing,
 * with its stored text and what is wrong with it, so that an editor shows it instead of a stand-in.
 */
export function modelFromRow(row: ModelRow): Model {
  const source = parseModelSourceJson(row.source);
  return create(ModelSchema, {
    name: row.name,
    enabled: row.enabled,
    source,
    ...(source ? {} : { unreadableSourceText: row.source, unreadableSourceError: modelSourceProblem(row.source) ?? "" }),
    description: row.description,
    createTime: timestampFromMs(row.createdAt),
    updateTime: timestampFromMs(row.updatedAt),
  });
}
