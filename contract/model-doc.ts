import { z } from "zod";
import type { Model } from "../gen/studio/v1/model_pb.js";
import { describeValue, issuesFromZod, type ValidationIssue } from "./issues.js";
import { checkModelSourceJson, modelSourceToJsonValue, type ModelSourceJson } from "./model-source.js";

/** The longest model name the registry stores. */
export const MAX_MODEL_NAME_LENGTH = 128;

/** The longest description the registry stores. */
export const MAX_DESCRIPTION_LENGTH = 4096;

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

/**
 * Why a model name cannot be used, or undefined when it can. Names go into URLs,
 * logs and CLI arguments, so they are short and plain: a letter or digit, then
 * letters, digits, `.`, `_`, `:` or `-`.
 */
export function modelNameProblem(name: string): string | undefined {
  if (name === "") return "must not be empty";
  if (name.length > MAX_MODEL_NAME_LENGTH)
    return `must be at most ${MAX_MODEL_NAME_LENGTH} characters (got ${name.length})`;
  if (!MODEL_NAME.test(name))
    return `must start with a letter or digit and hold only letters, digits, '.', '_', ':' and '-' (got ${describeValue(name)})`;
  return undefined;
}

/** Why a description cannot be stored, or undefined when it can. */
export function descriptionProblem(description: string): string | undefined {
  return description.length > MAX_DESCRIPTION_LENGTH
    ? `must be at most ${MAX_DESCRIPTION_LENGTH} characters (got ${description.length})`
    : undefined;
}

/**
 * The import/export document for one model, the one format the web page and the CLI read and
 * write: its name, description, enabled flag and its source in the design note's wire JSON. An
 * export file holds one document or an array of them. Every part is checked with the registry's
 * own rules, so the page, the CLI and the server agree on every error.
 */
export interface ModelDoc {
  name: string;
  description: string;
  enabled: boolean;
  source: ModelSourceJson;
}

const problemOf = (problem: (v: string) => string | undefined) => (value: string, ctx: z.RefinementCtx) => {
  const why = problem(value);
  if (why) ctx.addIssue({ code: "custom", message: why });
};

const DocShape = z.strictObject({
  name: z.string().superRefine(problemOf(modelNameProblem)),
  description: z.string().superRefine(problemOf(descriptionProblem)).default(""),
  enabled: z.boolean().default(true),
  source: z.unknown().optional(),
});

/** Validates one document; issue paths read like `source.files[0].filename`. */
export function checkModelDoc(value: unknown): { ok: true; doc: ModelDoc } | { ok: false; issues: ValidationIssue[] } {
  const shape = DocShape.safeParse(value, { reportInput: true });
  const issues: ValidationIssue[] = shape.success ? [] : issuesFromZod(shape.error);
  const rawSource = value && typeof value === "object" ? (value as Record<string, unknown>).source : undefined;
  if (rawSource === undefined) {
    issues.push({ path: "source", message: "is required" });
  } else {
    const source = checkModelSourceJson(rawSource, "source");
    if (!source.ok) issues.push(...source.issues);
    else if (shape.success && issues.length === 0) return { ok: true, doc: { ...shape.data, source: source.value } };
  }
  return { ok: false, issues };
}

/**
 * Parses JSON text holding one document or an array of them. Every problem of every entry is
 * reported at once, its path naming the entry (`[1].source.engine`); a name that appears twice is
 * one too, so that an import is refused before anything is written.
 */
export function parseModelDocs(text: string): { docs: ModelDoc[]; issues: ValidationIssue[] } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { docs: [], issues: [{ path: "(json)", message: `not valid JSON: ${(err as Error).message}` }] };
  }
  const list = Array.isArray(raw) ? raw : [raw];
  const at = (i: number, path: string) => (!Array.isArray(raw) ? path : path === "(root)" ? `[${i}]` : `[${i}].${path}`);
  const docs: ModelDoc[] = [];
  const issues: ValidationIssue[] = [];
  const seen = new Map<string, number>();
  list.forEach((item, i) => {
    const checked = checkModelDoc(item);
    if (!checked.ok) return issues.push(...checked.issues.map((issue) => ({ ...issue, path: at(i, issue.path) })));
    const first = seen.get(checked.doc.name);
    if (first !== undefined) issues.push({ path: at(i, "name"), message: `${describeValue(checked.doc.name)} appears twice (also [${first}])` });
    seen.set(checked.doc.name, first ?? i);
    docs.push(checked.doc);
  });
  return { docs, issues };
}

/**
 * The document of a registry row, for export and for the edit form. A stored source the studio
 * cannot read is carried as stored (its JSON, or its text where it is not JSON), never replaced by a
 * stand-in: validation then names what is wrong, and saving or importing it is refused until fixed.
 */
export function modelToDoc(model: Model): Record<string, unknown> {
  return {
    name: model.name,
    description: model.description,
    enabled: model.enabled,
    source: model.source ? modelSourceToJsonValue(model.source) : storedSource(model.unreadableSourceText),
  };
}

function storedSource(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
