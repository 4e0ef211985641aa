import { Code, ConnectError } from "@connectrpc/connect";
import { InvalidModelSourceError } from "../../contract/model-source.js";
import { RegistryError, type RegistryErrorCode } from "./registry-errors.js";

const CODES: Record<RegistryErrorCode, Code> = {
  model_not_found: Code.NotFound,
  model_disabled: Code.FailedPrecondition,
  model_source_invalid: Code.FailedPrecondition,
  model_exists: Code.AlreadyExists,
  invalid_model_name: Code.InvalidArgument,
  invalid_description: Code.InvalidArgument,
};

/** The Connect error for a registry domain error; anything else is passed through unchanged. */
export function registryConnectError(err: unknown): unknown {
  if (err instanceof RegistryError) return new ConnectError(err.message, CODES[err.code]);
  if (err instanceof InvalidModelSourceError) return new ConnectError(err.message, Code.InvalidArgument);
  return err;
}

/** Runs fn, turning registry domain errors into Connect errors at the RPC edge. */
export async function atRegistryEdge<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw registryConnectError(err);
  }
}
