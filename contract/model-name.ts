import { describeValue } from "./issues.js";

/** The longest model name the registry stores. */
export const MAX_MODEL_NAME_LENGTH = 128;

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

/**
 * Why a model name cannot be used, or undefined when it can. Names go into URLs,
 * logs and CLI arguments, so they are short and plain: a letter or digit, then
 * letters, digits, `.`, `_`, `:` or `-`. Shared by the registry and the web page.
 */
export function modelNameProblem(name: string): string | undefined {
  if (name === "") return "must not be empty";
  if (name.length > MAX_MODEL_NAME_LENGTH)
    return `must be at most ${MAX_MODEL_NAME_LENGTH} characters (got ${name.length})`;
  if (!MODEL_NAME.test(name))
    return `must start with a letter or digit and hold only letters, digits, '.', '_', ':' and '-' (got ${describeValue(name)})`;
  return undefined;
}

