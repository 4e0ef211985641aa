import { Code, ConnectError, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import { InvalidModelSourceError } from "../../contract/model-source.js";
import { AuthError } from "../auth/auth-gate.js";
import { TokenError } from "../auth/token-store.js";
import type { RequestGate } from "../context.js";
import { isDatabaseUnavailable } from "../db/pg/pg-errors.js";
import { DispatchError, type DispatchErrorCode } from "../dispatch/dispatch-error.js";
import { JobError, type JobErrorCode } from "../jobs/job-errors.js";
import { OutputError, type OutputErrorCode } from "../outputs/output-error.js";
import { RegistryError, type RegistryErrorCode } from "../registry/registry-errors.js";

const JOB_CODES: Record<JobErrorCode, Code> = {
  job_not_found: Code.NotFound,
  wrong_state: Code.FailedPrecondition,
  model_unavailable: Code.InvalidArgument,
  invalid_request: Code.InvalidArgument,
  idempotency_conflict: Code.AlreadyExists,
  watch_overflow: Code.ResourceExhausted,
};

const REGISTRY_CODES: Record<RegistryErrorCode, Code> = {
  model_not_found: Code.NotFound,
  model_disabled: Code.FailedPrecondition,
  model_source_invalid: Code.FailedPrecondition,
  model_exists: Code.AlreadyExists,
  invalid_model_name: Code.InvalidArgument,
  invalid_description: Code.InvalidArgument,
};

const TOKEN_CODES: Record<TokenError["code"], Code> = {
  not_found: Code.NotFound,
  invalid_argument: Code.InvalidArgument,
  resource_exhausted: Code.ResourceExhausted,
  already_revoked: Code.FailedPrecondition,
};

/** DispatchError's and OutputError's codes are Connect code names: a Receipt carries them as they are. */
const NAMED_CODES: Record<DispatchErrorCode | OutputErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  failed_precondition: Code.FailedPrecondition,
  not_found: Code.NotFound,
  resource_exhausted: Code.ResourceExhausted,
  permission_denied: Code.PermissionDenied,
};

/** The Connect code of a domain error, by its class; undefined for anything else. */
function domainCode(err: unknown): Code | undefined {
  if (err instanceof JobError) return JOB_CODES[err.code];
  if (err instanceof RegistryError) return REGISTRY_CODES[err.code];
  if (err instanceof InvalidModelSourceError) return Code.InvalidArgument;
  if (err instanceof DispatchError || err instanceof OutputError) return NAMED_CODES[err.code];
  if (err instanceof TokenError) return TOKEN_CODES[err.code];
  if (err instanceof AuthError) return err.code === "unauthenticated" ? Code.Unauthenticated : Code.PermissionDenied;
  return undefined;
}

const DATABASE_UNAVAILABLE = "the studio's database is unavailable right now (restarting or unreachable); try again";

/**
 * The error a client gets for what a handler or a request gate threw: the one mapping from the
 * studio's domain errors (jobs, registry, dispatch, outputs, tokens, auth) to Connect codes, and a
 * lost or restarting database to UNAVAILABLE (clients and workers retry it with backoff instead of
 * reading INTERNAL). A ConnectError passes as it is; anything else stays what it was (INTERNAL).
 */
export function connectErrorOf(err: unknown): unknown {
  if (err instanceof ConnectError && err.code !== Code.Internal && err.code !== Code.Unknown) return err;
  const code = domainCode(err);
  if (code !== undefined) return new ConnectError((err as Error).message, code);
  return isDatabaseUnavailable(err) ? new ConnectError(DATABASE_UNAVAILABLE, Code.Unavailable, undefined, undefined, err) : err;
}

async function* mapStream<T>(messages: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (err) {
    throw connectErrorOf(err);
  }
}

/**
 * connectErrorOf for every RPC (unary and streams); placed right inside the request log, so the log
 * shows the code the client got. Handlers throw domain errors and never map them themselves.
 */
export function createErrorInterceptor(): Interceptor {
  return (next) =>
    async function connectErrors(req) {
      try {
        const res = await next(req);
        return res.stream ? { ...res, message: mapStream((res as StreamResponse).message) } : res;
      } catch (err) {
        throw connectErrorOf(err);
      }
    };
}

/** The same for the request gates (auth refuses, and looks the token up, before the body is read). */
export function errorGate(next: RequestGate): RequestGate {
  return async function connectErrorsGate(ctx) {
    try {
      await next(ctx);
    } catch (err) {
      throw connectErrorOf(err);
    }
  };
}
