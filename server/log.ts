import pino, { type DestinationStream, type Logger } from "pino";
import { LineBuffer } from "./log-buffer.js";

export type { Logger };

/** Field names whose values never reach a log line: at the top level, one level down, and in a nested `headers`. */
export const SECRET_FIELDS: readonly string[] = ["token", "secret", "authorization", "adminToken"];
const CENSOR = "[redacted]";
const hasOwn = Object.prototype.hasOwnProperty;

/**
 * The line's fields with secrets one level down censored (`x.token`, `x.headers.authorization`);
 * pino's own redaction censors the top-level ones. The given object is returned as it is when it
 * holds no such field, and a copy otherwise: the caller's objects are never changed.
 *
 * pino's wildcard paths (`*.token`) ran the redactor on every field of every line and re-parsed its
 * paths each time; this costs one property check per object-valued field.
 */
export function redactNestedSecrets(fields: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const key in fields) {
    const value = fields[key];
    if (value === null || typeof value !== "object" || Array.isArray(value)) continue;
    const censored = censorOneLevel(value as Record<string, unknown>);
    if (censored === value) continue;
    out ??= { ...fields };
    out[key] = censored;
  }
  return out ?? fields;
}

function censorOneLevel(value: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  const copy = () => (out ??= value instanceof Error ? errorFields(value) : { ...value });
  for (const name of SECRET_FIELDS) if (hasOwn.call(value, name)) copy()[name] = CENSOR;
  const headers = value.headers;
  if (headers !== null && typeof headers === "object" && hasOwn.call(headers, "authorization")) {
    copy().headers = { ...(headers as Record<string, unknown>), authorization: CENSOR };
  }
  return out ?? value;
}

/** A copy of an Error (same prototype, message and stack) whose own fields can be censored. */
function errorFields(err: Error): Record<string, unknown> {
  const copy = Object.create(Object.getPrototypeOf(err) as object) as Record<string, unknown>;
  Object.defineProperty(copy, "message", { value: err.message, enumerable: false });
  Object.defineProperty(copy, "stack", { value: err.stack, enumerable: false });
  return Object.assign(copy, err);
}

/**
 * Lines to stdout leave in writes of at least this many characters, or STDOUT_FLUSH_MS after they
 * were logged, whichever comes first (LineBuffer). Under load that is one write(2) for a few dozen
 * lines: Bun runs sonic-boom's "asynchronous" write on the JavaScript thread, one or two a turn.
 */
export const STDOUT_BUFFER_CHARS = 4096;
/** The longest a line to stdout waits for company; pino writes what is pending when the process exits (exit, a signal it handles, a crash). */
export const STDOUT_FLUSH_MS = 100;

export interface LoggerOptions {
  /** pino-pretty to the terminal; default when stdout is a terminal. */
  pretty?: boolean;
  /** Where lines go instead of stdout (tests). */
  destination?: DestinationStream;
}

/**
 * JSON lines by default; pretty when stdout is a terminal (one line per entry, its fields inline). Secrets are redacted wherever they
 * appear: top-level fields by pino's per-key redaction, fields one level down by
 * redactNestedSecrets (on each line's fields, the base bindings and every child's bindings).
 * Lines to stdout are buffered (STDOUT_BUFFER_CHARS, at most STDOUT_FLUSH_MS) and written
 * asynchronously, and pino flushes what is pending when the process exits.
 */
export function createLogger(level: string, { pretty = process.stdout.isTTY === true, destination }: LoggerOptions = {}): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: "studio" },
    redact: { paths: [...SECRET_FIELDS], censor: CENSOR },
    formatters: { log: redactNestedSecrets, bindings: redactNestedSecrets },
  };
  const logger = destination
    ? pino(options, destination)
    : pretty
      ? pino({ ...options, transport: { target: "pino-pretty", options: { colorize: true, ignore: "pid,hostname,service", singleLine: true } } })
      : pino(options, new LineBuffer(pino.destination({ dest: 1, sync: false }), { minChars: STDOUT_BUFFER_CHARS, maxDelayMs: STDOUT_FLUSH_MS }));
  // pino gives a child's bindings no formatter: censor them on the way in (children of children inherit this).
  const child = logger.child as unknown as (this: Logger, bindings: pino.Bindings, childOptions?: pino.ChildLoggerOptions) => Logger;
  logger.child = function redactedChild(this: Logger, bindings: pino.Bindings, childOptions?: pino.ChildLoggerOptions) {
    return child.call(this, redactNestedSecrets(bindings), childOptions);
  } as unknown as Logger["child"];
  return logger;
}
