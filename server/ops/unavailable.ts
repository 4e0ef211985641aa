import { Code, ConnectError, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import type { RequestGate } from "../context.js";
import { isDatabaseUnavailable } from "../db/pg/pg-errors.js";

const MESSAGE = "the studio's database is unavailable right now (restarting or unreachable); try again";

/** The error a client should see: UNAVAILABLE (retry) for a database outage, the error itself otherwise. */
export function unavailableOr(err: unknown): unknown {
  if (err instanceof ConnectError && err.code !== Code.Internal && err.code !== Code.Unknown) return err;
  return isDatabaseUnavailable(err) ? new ConnectError(MESSAGE, Code.Unavailable, undefined, undefined, err) : err;
}

async function* mapStream<T>(messages: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (err) {
    throw unavailableOr(err);
  }
}

/**
 * Turns a lost or restarting database into UNAVAILABLE for every RPC (unary and streams),
 * so that clients and workers retry with backoff instead of reading INTERNAL; placed
 * right inside the request log, so the log shows the code the client got.
 */
export function createUnavailableInterceptor(): Interceptor {
  return (next) =>
    async function databaseUnavailable(req) {
      try {
        const res = await next(req);
        return res.stream ? { ...res, message: mapStream((res as StreamResponse).message) } : res;
      } catch (err) {
        throw unavailableOr(err);
      }
    };
}

/** The same for the request gates (auth looks the token up before the body is read). */
export function unavailableGate(next: RequestGate): RequestGate {
  return async function databaseUnavailableGate(ctx) {
    try {
      await next(ctx);
    } catch (err) {
      throw unavailableOr(err);
    }
  };
}
