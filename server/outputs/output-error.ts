/** The Connect code names an output problem maps to (also a Receipt's `code`). */
export type OutputErrorCode = "invalid_argument" | "resource_exhausted" | "failed_precondition" | "not_found";

/** Raised when an output cannot be stored or read; `code` says which Connect code it maps to. */
export class OutputError extends Error {
  constructor(
    readonly code: OutputErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "OutputError";
  }
}
