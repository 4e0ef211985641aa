import { modelNameProblem } from "../../contract/model-name.js";
import { RegistryError } from "./registry-errors.js";

export { MAX_MODEL_NAME_LENGTH, modelNameProblem } from "../../contract/model-name.js";

/** Throws a RegistryError("invalid_model_name") naming the field when the name breaks the rules. */
export function checkModelName(name: string, field = "name"): void {
  const why = modelNameProblem(name);
  if (why) throw new RegistryError("invalid_model_name", name, `${field}: ${why}`);
}
