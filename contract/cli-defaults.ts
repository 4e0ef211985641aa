import type { ModelCliDefaults } from "../gen/studio/v1/model_pb.js";
import { issuesFromZod, type ValidationIssue } from "./issues.js";
import { CliDefaultsJsonSchema, cliDefaultsToJson } from "./model-source.js";

/** Every broken rule of cli defaults (or a task's overrides), with the same rules as the registry. */
export function checkCliDefaults(defaults: ModelCliDefaults, prefix: string): ValidationIssue[] {
  const result = CliDefaultsJsonSchema.safeParse(cliDefaultsToJson(defaults), { reportInput: true });
  return result.success ? [] : issuesFromZod(result.error, prefix);
}
