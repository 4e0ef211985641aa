import { z } from "zod";
import type { Model } from "../../gen/studio/v1/model_pb.js";
import { issuesFromZod, type ValidationIssue } from "../../contract/issues.js";
import { checkModelSourceJson, modelSourceToJsonValue, type ModelSourceJson } from "../../contract/model-source.js";
// The registry's own name rule (it has no Node dependencies), so the page and the server agree.
import { modelNameProblem } from "../../contract/model-name.js";

/**
 * The import/export document for one model: its name, description, enabled flag
 * and its source in the design note's wire JSON. An export file holds one
 * document or an array of them; the source part is validated by the registry's
 * own rules from contract/, so the page and the server agree on every error.
 */
export interface ModelDoc {
  name: string;
  description: string;
  enabled: boolean;
  source: ModelSourceJson;
}

const DocShape = z.strictObject({
  name: z.string().superRefine((name, ctx) => {
    const why = modelNameProblem(name);
    if (why) ctx.addIssue({ code: "custom", message: why });
  }),
  description: z.string().max(4096).default(""),
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

/** Parses JSON text holding one document or an array of them. */
export function parseModelDocs(text: string): { docs: ModelDoc[]; issues: ValidationIssue[] } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { docs: [], issues: [{ path: "(json)", message: `not valid JSON: ${(err as Error).message}` }] };
  }
  const list = Array.isArray(raw) ? raw : [raw];
  const docs: ModelDoc[] = [];
  const issues: ValidationIssue[] = [];
  list.forEach((item, i) => {
    const checked = checkModelDoc(item);
    if (checked.ok) docs.push(checked.doc);
    else
      issues.push(
        ...checked.issues.map((issue) => ({
          ...issue,
          path: !Array.isArray(raw) ? issue.path : issue.path === "(root)" ? `[${i}]` : `[${i}].${issue.path}`,
        })),
      );
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
