import { ConnectError, Code, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { callerKey } from "../auth/caller.js";
import { PUBLIC_RPCS } from "../auth/access-policy.js";
import type { RequestGate } from "../context.js";
import type { Logger } from "../log.js";

/** The header a caller may send to correlate its request id; the studio echoes it back. */
export const REQUEST_ID_HEADER = "x-request-id";
const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,64}$/;
/**
 * Refusals that say something about who is calling (a missing, bad or under-privileged token):
 * logged at info. Every other call is a debug line (an operator's info log is the job events,
 * not one line per RPC), and a server-side failure an error line.
 */
const NOTABLE_REFUSALS: ReadonlySet<Code> = new Set([Code.Unauthenticated, Code.PermissionDenied]);

/** What the request log needs to know about a method, worked out once per method. */
interface MethodInfo {
  rpc: string;
  anonymous: boolean;
}

/**
 * Logs every RPC once it ends: request id, method, Connect code, duration and the
 * caller's token name (never the token): at debug, except auth refusals (info) and server
 * failures (error). Streams are logged when their last message has gone. It runs outside auth
 * (the interceptor before auth's, the gate around auth's request gate) so that refused calls are
 * logged too, those refused before their body was read included. It sits on every call, so per
 * call it does little: a method's names are worked out once, the fields are built only for a line
 * that will be written, and a stream is passed through a plain iterator, not a generator.
 */
export function createRequestLog(logger: Logger): { interceptor: Interceptor; gate: (next: RequestGate) => RequestGate } {
  const methods = new WeakMap<object, MethodInfo>();
  const infoOf = (req: { service: { typeName: string }; method: { name: string } }): MethodInfo => {
    let info = methods.get(req.method);
    if (!info) {
      const rpc = `${req.service.typeName.replace(/^studio\.v1\./, "")}/${req.method.name}`;
      info = { rpc, anonymous: PUBLIC_RPCS.has(`${req.service.typeName}/${req.method.name}`) };
      methods.set(req.method, info);
    }
    return info;
  };
  const newRequestId = requestIds();
  const requestIdOf = (header: Headers) => {
    const given = header.get(REQUEST_ID_HEADER);
    return given && ACCEPTABLE_ID.test(given) ? given : newRequestId();
  };
  /** Writes the line of one call that ended (err undefined: it succeeded). */
  const logEnd = (
    call: { service: { typeName: string }; method: { name: string } },
    values: ContextValues,
    requestId: string,
    started: number,
    named: { jobId?: unknown; workerName?: unknown } | undefined,
    err?: unknown,
  ) => {
    // Nothing is built for a line below the logger's level (a success is a debug line).
    if (err === undefined && !logger.isLevelEnabled("debug")) return;
    const info = infoOf(call);
    const connectErr = err === undefined ? undefined : ConnectError.from(err);
    const code = connectErr === undefined ? "ok" : codeName(connectErr.code);
    // An unauthenticated call has no caller (the context still holds the default).
    const anonymous = code === "unauthenticated" || info.anonymous;
    const caller = anonymous ? undefined : values.get(callerKey);
    const fields: Record<string, unknown> = {
      requestId,
      rpc: info.rpc,
      code,
      ms: Math.round(performance.now() - started),
      caller: caller?.name ?? null,
      role: caller?.role ?? null,
    };
    if (typeof named?.jobId === "string" && named.jobId) fields.jobId = named.jobId;
    if (typeof named?.workerName === "string" && named.workerName) fields.worker = named.workerName;
    if (connectErr === undefined) logger.debug(fields, "rpc");
    else if (connectErr.code === Code.Internal || connectErr.code === Code.Unknown) {
      logger.error({ ...fields, err: connectErr.message }, "rpc failed");
    } else logger[NOTABLE_REFUSALS.has(connectErr.code) ? "info" : "debug"]({ ...fields, err: connectErr.rawMessage }, "rpc refused");
  };

  const interceptor: Interceptor = (next) =>
    async function requestLog(req) {
      const requestId = requestIdOf(req.header);
      const started = performance.now();
      const named = req.stream ? undefined : (req.message as { jobId?: unknown; workerName?: unknown });
      const done = (err?: unknown) => logEnd(req, req.contextValues, requestId, started, named, err);
      let res;
      try {
        res = await next(req);
      } catch (err) {
        done(err);
        throw err;
      }
      res.header.set(REQUEST_ID_HEADER, requestId);
      if (!res.stream) {
        done();
        return res;
      }
      return { ...res, message: whenEnded(res.message, done) };
    };

  /** Calls refused by a request gate never reach the interceptor: their line is written here. */
  const gate = (next: RequestGate): RequestGate =>
    function requestLogGate(ctx) {
      const started = performance.now();
      const refused = (err: unknown): never => {
        const requestId = requestIdOf(ctx.requestHeader);
        ctx.responseHeader.set(REQUEST_ID_HEADER, requestId);
        logEnd(ctx, ctx.values, requestId, started, undefined, err);
        throw err;
      };
      try {
        const passed = next(ctx);
        return passed instanceof Promise ? passed.catch(refused) : passed;
      } catch (err) {
        return refused(err);
      }
    };
  return { interceptor, gate };
}

/**
 * Request ids for calls that bring none: a random per-process prefix and a counter, unique within
 * the process and unlikely to repeat across restarts, without reading random bytes on every call.
 */
export function requestIds(): () => string {
  const prefix = randomBytes(6).toString("base64url");
  let n = 0;
  return () => `${prefix}-${(++n).toString(36)}`;
}

/**
 * Passes a stream's messages through and calls `ended` once: when it finishes, fails
 * (with the error) or is closed early by its reader. A plain iterator costs one
 * callback per message where an async generator's `yield*` costs several promises.
 */
export function whenEnded<T>(messages: AsyncIterable<T>, ended: (err?: unknown) => void): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const it = messages[Symbol.asyncIterator]();
      let over = false;
      const end = (err?: unknown) => {
        if (over) return;
        over = true;
        ended(err);
      };
      const settled = (r: IteratorResult<T>) => {
        if (r.done) end();
        return r;
      };
      const failed = (err: unknown): never => {
        end(err);
        throw err;
      };
      return {
        next: () => {
          if (over) return Promise.resolve({ done: true, value: undefined });
          try {
            return it.next().then(settled, failed);
          } catch (err) {
            end(err);
            return Promise.reject(err);
          }
        },
        return: async (value?: unknown) => {
          try {
            return (await it.return?.(value)) ?? { done: true, value: undefined };
          } finally {
            end();
          }
        },
        throw: async (err?: unknown) => {
          if (!it.throw) {
            end(err);
            throw err;
          }
          return it.throw(err).then(settled, failed);
        },
      };
    },
  };
}

/** "not_found" for Code.NotFound: the name Connect puts on the wire. */
export function codeName(code: Code): string {
  return Code[code].replace(/[A-Z]/g, (c, i: number) => (i ? "_" : "") + c.toLowerCase());
}
