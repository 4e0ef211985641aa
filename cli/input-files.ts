import { readFileSync } from "node:fs";
import { z } from "zod";
import { checkModelSourceJson, formatIssues, issuesFromZod, modelSourceFromJson, type ModelSourceJson } from "../contract/index.js";
import type { ModelSource } from "../gen/studio/v1/model_pb.js";
import { CliError, EXIT } from "./exit-codes.js";

/** Reads a file ("-" is stdin) and parses JSON; unreadable or malformed input is a usage error. */
export function readJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (err) {
    throw new CliError(`${what}: cannot read ${path}: ${(err as Error).message}`, EXIT.usage);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CliError(`${what}: ${path} is not JSON: ${(err as Error).message}`, EXIT.usage);
  }
}

/** A ModelSource from its wire JSON (the registry's `source` format), validated with the contract's rules. */
export function sourceFromJson(value: unknown, where: string): ModelSource {
  const checked = checkModelSourceJson(value, "source");
  if (!checked.ok) throw new CliError(`${where}: invalid model source: ${formatIssues(checked.issues)}`, EXIT.usage);
  return modelSourceFromJson(checked.value);
}

/** One entry of an import/export file. */
export const ModelEntrySchema = z.strictObject({
  name: z.string().min(1),
  description: z.string().default(""),
  enabled: z.boolean().default(true),
  source: z.unknown(),
});

/** A validated entry, its source already a proto message. */
export interface ModelEntry {
  name: string;
  description: string;
  enabled: boolean;
  source: ModelSource;
  sourceJson: ModelSourceJson;
}

/**
 * Parses an import file: one `{"name", "description", "enabled", "source"}` object or an
 * array of them, `source` being the ModelSource wire JSON. Every problem in every entry
 * is reported at once, naming the entry.
 */
export function parseModelEntries(value: unknown, path: string): ModelEntry[] {
  const list = Array.isArray(value) ? value : [value];
  const problems: string[] = [];
  const entries: ModelEntry[] = [];
  list.forEach((raw, i) => {
    const at = Array.isArray(value) ? `[${i}]` : "";
    const parsed = ModelEntrySchema.safeParse(raw, { reportInput: true });
    if (!parsed.success) {
      problems.push(formatIssues(issuesFromZod(parsed.error, at)));
      return;
    }
    const checked = checkModelSourceJson(parsed.data.source, `${at}${at ? "." : ""}source`);
    if (!checked.ok) {
      problems.push(`${parsed.data.name}: ${formatIssues(checked.issues)}`);
      return;
    }
    const { name, description, enabled } = parsed.data;
    entries.push({ name, description, enabled, source: modelSourceFromJson(checked.value), sourceJson: checked.value });
  });
  if (problems.length > 0) throw new CliError(`${path}: ${problems.join("; ")}`, EXIT.usage);
  const names = new Set<string>();
  for (const e of entries) {
    if (names.has(e.name)) throw new CliError(`${path}: model ${JSON.stringify(e.name)} appears twice`, EXIT.usage);
    names.add(e.name);
  }
  return entries;
}
