/** What went wrong in the registry, for the RPC edge to map onto a Connect code. */
export type RegistryErrorCode = 
  | "model_not_found"
  | "model_disabled"
  /** The stored source no longer validates (a row edited by hand, or rules that tightened). */
  | "model_source_invalid"
  | "model_exists"
  | "invalid_model_name"
  | "invalid_description";

/**
 * A registry rule the caller broke. Callers branch on `code`, never on the message;
 * `modelName` is the name the caller gave.
 */
export class RegistryError extends Error {
  constructor(
    readonly code: RegistryErrorCode,
    readonly modelName: string,
    message: string,
  ) {
    super(message);
    this.name = "RegistryError";
  }
}

/** The name is not in the registry. */
export const modelNotFound = (name: string) =>
  new RegistryError("model_not_found", name, `model ${JSON.stringify(name)} is not in the registry`);

/** The name is in the registry but disabled: no new job may use it. */
export const modelDisabled = (name: string) =>
  new RegistryError("model_disabled", name, `model ${JSON.stringify(name)} is disabled`);

/** The row's stored source does not validate, so nothing may be resolved from it. */
export const modelSourceInvalid = (name: string) =>
  new RegistryError(
    "model_source_invalid",
    name,
    `model ${JSON.stringify(name)} has a stored source that does not validate; update it with UpdateModel`,
  );

/** The name is taken. */
export const modelExists = (name: string) =>
  new RegistryError("model_exists", name, `model ${JSON.stringify(name)} already exists`);
