import { readFileSync } from "node:fs";
import { checkModelSourceJson, formatIssues, modelSourceFromJson, parseModelDocs, type ModelDoc } from "../contract/index.js";
import type { ModelSource } from "../gen/studio/v1/model_pb.js";
import { CliError, EXIT } from "./exit-codes.js";

/** Reads a file ("-" is stdin); an unreadable one is a usage error. */
function readTextFile(path: string, what: string): string {
  try {
    return readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (err) {
    throw new CliError(`${what}: cannot read ${path}: ${(err as Error).message}`, EXIT.usage);
  }
}

/** Reads a file ("-" is stdin) and parses JSON; unreadable or malformed input is a usage error. */
export function readJsonFile(path: string, what: string): unknown {
  const text = readTextFile(path, what);
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

/**
 * Reads an import file: one model document (`{"name", "description", "enabled", "source"}`) or an
 * array of them, checked by the contract's rules (the web page's too). Every problem in every entry
 * is reported at once, naming the entry.
 */
export function readModelDocs(path: string): ModelDoc[] {
  const { docs, issues } = parseModelDocs(readTextFile(path, "import"));
  if (issues.length > 0) throw new CliError(`${path}: ${formatIssues(issues)}`, EXIT.usage);
  return docs;
}
