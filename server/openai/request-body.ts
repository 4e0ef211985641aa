import type { HttpRequest } from "../http/http-routes.js";
import { OpenAiError } from "./openai-errors.js";

/** The defaults of readJsonBody. */
export const BODY_LIMITS = {
  /**
   * The largest request body: a text task holds at most 256,000 characters (contract TASK_LIMITS),
   * which JSON escaping and UTF-8 can make up to 6 bytes each, plus the other fields.
   */
  maxBytes: 2 * 1024 * 1024,
  /** How long a whole body may take to arrive once the head is in: a client that trickles it is cut. */
  timeoutMs: 30_000,
} as const;

const tooLarge = (maxBytes: number) =>
  new OpenAiError(413, "invalid_request_error", `the request body is larger than ${maxBytes} bytes`, "request_too_large");

/**
 * Reads a request's JSON body, bounded in size (Content-Length checked before any byte is read,
 * then counted as it arrives) and in time. Call it only after the caller was authenticated from
 * the headers, so that nobody unauthenticated makes the studio read or parse anything.
 */
export async function readJsonBody(
  req: HttpRequest,
  { maxBytes = BODY_LIMITS.maxBytes, timeoutMs = BODY_LIMITS.timeoutMs }: { maxBytes?: number; timeoutMs?: number } = {},
): Promise<unknown> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes);
  const type = String(req.headers["content-type"] ?? "");
  if (type !== "" && !/^application\/(json|[\w.+-]+\+json)\s*(;|$)/i.test(type))
    throw new OpenAiError(415, "invalid_request_error", `the request body must be application/json (got ${JSON.stringify(type.slice(0, 100))})`, "unsupported_media_type");
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new OpenAiError(408, "invalid_request_error", `the request body did not arrive within ${timeoutMs} ms`, "request_timeout")), timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", fail);
      req.off("aborted", onAborted);
    };
    const fail = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > maxBytes) return fail(tooLarge(maxBytes));
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve();
    };
    const onAborted = () => fail(new OpenAiError(400, "invalid_request_error", "the client aborted the request", "aborted"));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", fail);
    req.on("aborted", onAborted);
  });
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") throw new OpenAiError(400, "invalid_request_error", "the request needs a JSON body", "invalid_json");
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new OpenAiError(400, "invalid_request_error", `the request body is not valid JSON: ${(err as Error).message}`, "invalid_json");
  }
}
