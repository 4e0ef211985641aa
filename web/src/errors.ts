import { Code, ConnectError } from "@connectrpc/connect";
import { HttpError } from "./api.js";

/** True when the studio refused the call for a missing or bad token: the page then asks for one. */
export function isUnauthenticated(err: unknown): boolean {
  if (err instanceof ConnectError) return err.code === Code.Unauthenticated;
  return err instanceof HttpError && err.status === 401;
}

/** True when the error is the page's own abort of a stream or request. */
export function isAbort(err: unknown): boolean {
  if (err instanceof ConnectError) return err.code === Code.Canceled;
  return err instanceof DOMException && err.name === "AbortError";
}

/** A message for a person: the Connect code name and the server's own words, never swallowed. */
export function describeError(err: unknown): string {
  if (err instanceof ConnectError) {
    const code = Code[err.code]?.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase() ?? `code ${err.code}`;
    return `${code}: ${err.rawMessage}`;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}
