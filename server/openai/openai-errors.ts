import type * as http from "node:http";
import type { HttpResponse } from "../http/http-routes.js";

/** OpenAI's error types, as its clients read them (`error.type`). */
export type OpenAiErrorType = "invalid_request_error" | "authentication_error" | "permission_error" | "not_found_error" | "server_error" | "service_unavailable";

/**
 * An error of the OpenAI-compatible API, answered in OpenAI's shape:
 * `{"error": {"message", "type", "param", "code"}}` with the HTTP status. The official SDKs map
 * the status to their error classes (401 AuthenticationError, 404 NotFoundError, ...) and read
 * `param` and `code`, so both are set wherever they say something.
 */
export class OpenAiError extends Error {
  constructor(
    readonly status: number,
    readonly type: OpenAiErrorType,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    /** Extra response headers (the SDKs read x-should-retry). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "OpenAiError";
  }

  /** The JSON body. */
  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A request parameter that is missing, malformed or out of range: 400 naming it. */
export const badParameter = (param: string, message: string, code = "invalid_value") =>
  new OpenAiError(400, "invalid_request_error", `${param}: ${message}`, code, param);

/** Answers an OpenAiError; 401s carry WWW-Authenticate as RFC 6750 asks. */
export function sendOpenAiError(res: HttpResponse, err: OpenAiError): void {
  const body = `${JSON.stringify(err.body())}\n`;
  const headers: Record<string, string | number> = { "content-type": "application/json", "content-length": Buffer.byteLength(body) };
  if (err.status === 401) headers["www-authenticate"] = 'Bearer realm="studio"';
  Object.assign(headers, err.headers);
  (res as http.ServerResponse).writeHead(err.status, headers);
  res.end(body);
}
