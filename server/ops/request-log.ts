import { ConnectError, Code, type Interceptor } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { callerKey } from "../auth/caller.js";
import { PUBLIC_RPCS } from "../auth/access-policy.js";
import type { Logger } from "../log.js";

/** The header a caller may send to correlate its request id; the studio echoes it back. */
export const REQUEST_ID_HEADER = "x-request-id";
const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,64}$/;
/** Calls a busy worker makes every few seconds: logged at debug when they succeed. */
const CHATTY: ReadonlySet<string> = new Set([
  "WorkerService/Heartbeat",
  "WorkerService/ReportProgress",
  "WorkerService/ClaimJob",
  "grpc.health.v1.Health/Check",
]);

/**
 * Logs every RPC once it ends: request id, method, Connect code, duration and the
 * caller's token name (never the token). Streams are logged when their last message
 * has gone. It runs outside the auth interceptor so refused calls are logged too.
 */
export function createRequestLogInterceptor(logger: Logger): Interceptor {
  return (next) =>
    async function requestLog(req) {
      const given = req.header.get(REQUEST_ID_HEADER);
      const requestId = given && ACCEPTABLE_ID.test(given) ? given : randomBytes(6).toString("base64url");
      const started = performance.now();
      const rpc = `${req.service.typeName.replace(/^studio\.v1\./, "")}/${req.method.name}`;
      const named = req.stream ? undefined : (req.message as { jobId?: unknown; workerName?: unknown });
      const ids = {
        ...(typeof named?.jobId === "string" && named.jobId ? { jobId: named.jobId } : {}),
        ...(typeof named?.workerName === "string" && named.workerName ? { worker: named.workerName } : {}),
      };
      const done = (err?: unknown) => {
        const code = err === undefined ? "ok" : codeName(ConnectError.from(err).code);
        // An unauthenticated call has no caller (the context still holds the default).
        const anonymous = code === "unauthenticated" || PUBLIC_RPCS.has(`${req.service.typeName}/${req.method.name}`);
        const caller = anonymous ? undefined : req.contextValues.get(callerKey);
        const fields = { requestId, rpc, code, ms: Math.round(performance.now() - started), caller: caller?.name ?? null, role: caller?.role ?? null, ...ids };
        if (err === undefined) logger[CHATTY.has(rpc) ? "debug" : "info"](fields, "rpc");
        else if (ConnectError.from(err).code === Code.Internal || ConnectError.from(err).code === Code.Unknown) {
          logger.error({ ...fields, err: ConnectError.from(err).message }, "rpc failed");
        } else logger.info({ ...fields, err: ConnectError.from(err).rawMessage }, "rpc refused");
      };
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
      const messages = res.message;
      return {
        ...res,
        message: (async function* logged() {
          let error: unknown;
          try {
            yield* messages;
          } catch (err) {
            error = err;
            throw err;
          } finally {
            done(error);
          }
        })(),
      };
    };
}

/** "not_found" for Code.NotFound: the name Connect puts on the wire. */
export function codeName(code: Code): string {
  return Code[code].replace(/[A-Z]/g, (c, i: number) => (i ? "_" : "") + c.toLowerCase());
}
