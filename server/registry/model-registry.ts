import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { modelSourceProblem, parseModelSourceJson, sharedModelSourceFromStored, validateModelSource, modelSourceToJsonText } from "../../contract/model-source.js";
import { engineName, type EngineName } from "../../contract/names.js";
import { vramNeedOf, vramRequirementOf } from "../../contract/vram.js";
import { ModelSchema, type Model, type ModelSource } from "../../gen/studio/v1/model_pb.js";
import { descriptionProblem, modelNameProblem } from "../../contract/model-doc.js";
import { modelDisabled, modelNotFound, modelSourceInvalid, RegistryError } from "./registry-errors.js";

/** A model resolved for a job: what the job row stores at write time. */
export interface ResolvedModel {
  name: string;
  engine: EngineName;
  /** Parsed once per stored text and shared (sharedModelSourceFromStored): read it, never change it. */
  source: ModelSource;
  /** The ModelSource wire JSON as stored on the registry row (already validated). */
  sourceJson: string;
  /** The GPU memory a job of it needs (contract/vram.ts: stated or estimated), or null when none is counted. */
  vramBytes: number | null;
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

/** A `studioModels` row as both stores read it. */
export interface ModelRow {
  name: string;
  enabled: boolean;
  engine: string;
  source: string;
  description: string;
  createdAt: number;
  updatedAt: number;
}


/**
 * The registry: the single source of truth for what a model name means. Every
 * write validates the source with the contract's rules (InvalidModelSourceError)
 * and runs in one transaction; misses are RegistryErrors with a code. SQLite
 * (sqlite-model-registry.ts) and PostgreSQL (pg-model-registry.ts) implement it
 * and run the same suite (test/registry/registry-store-suite.ts).
 */
export interface ModelRegistry {
  list(opts?: { enabledOnly?: boolean }): Promise<Model[]>;
  /** The model, or a RegistryError("model_not_found"). */
  get(name: string): Promise<Model>;
  create(input: CreateModelInput): Promise<Model>;
  update(name: string, input: UpdateModelInput): Promise<Model>;
  setEnabled(name: string, enabled: boolean): Promise<Model>;
  /** Deletes the row. Jobs already written keep the source they resolved. */
  delete(name: string): Promise<void>;
  /** What a job for this name runs, as of now: RegistryError "model_not_found" or "model_disabled" when no job may use it. */
  resolve(name: string): Promise<ResolvedModel>;
}

/** A validated create, ready for a store to insert. */
export function newModelRow(input: CreateModelInput, at: number): ModelRow {
  checkModelName(input.name);
  const source = validateModelSource(input.source, "source");
  return {
    name: input.name,
    enabled: input.enabled ?? true,
    engine: engineOf(source),
    source: modelSourceToJsonText(source),
    description: checkDescription(input.description ?? ""),
    createdAt: at,
    updatedAt: at,
  };
}

/** A validated update: the columns to set (updatedAt is the store's). */
export function modelChanges(input: UpdateModelInput): Partial<Pick<ModelRow, "engine" | "source" | "description">> {
  const source = input.source === undefined ? undefined : validateModelSource(input.source, "source");
  const description = input.description === undefined ? undefined : checkDescription(input.description);
  return {
    ...(source ? { engine: engineOf(source), source: modelSourceToJsonText(source) } : {}),
    ...(description !== undefined ? { description } : {}),
  };
}

/**
 * The resolution of a registry row read for a job write (the row, never a cache, decides), or the
 * RegistryError that refuses it. The source is the contract's shared message for the stored text.
 */
export function resolveModelRow(
  name: string,
  row: { name: string; enabled: boolean | number; source: string } | undefined | null,
): ResolvedModel {
  if (!row) throw modelNotFound(name);
  if (!row.enabled) throw modelDisabled(name);
  const source = sharedModelSourceFromStored(row.source);
  if (!source) throw modelSourceInvalid(name);
  return { name: row.name, engine: engineOf(source), source, sourceJson: row.source, vramBytes: vramNeedOf(source)?.bytes ?? null };
}

function engineOf(source: ModelSource): EngineName {
  const name = engineName(source.engine);
  if (!name) throw new RangeError(`engine ${source.engine} has no name`); // validateModelSource rules this out
  return name;
}

/** Throws a RegistryError("invalid_model_name") naming the field when the name breaks the rules. */
export function checkModelName(name: string, field = "name"): void {
  const why = modelNameProblem(name);
  if (why) throw new RegistryError("invalid_model_name", name, `${field}: ${why}`);
}

function checkDescription(description: string): string {
  const why = descriptionProblem(description);
  if (why) throw new RegistryError("invalid_description", "", `description: ${why}`);
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
    vram: vramRequirementOf(source),
    ...(source ? {} : { unreadableSourceText: row.source, unreadableSourceError: modelSourceProblem(row.source) ?? "" }),
    description: row.description,
    createTime: timestampFromMs(row.createdAt),
    updateTime: timestampFromMs(row.updatedAt),
  });
}
