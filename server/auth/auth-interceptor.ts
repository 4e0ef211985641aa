import { Code, ConnectError, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import { peerOf } from "../http/peer-context.js";
import type { AuthEvents } from "./auth-events.js";
import type { AuthGate } from "./auth-gate.js";
import { callerKey, OPEN_CALLER, type Caller } from "./caller.js";
import { methodPolicies } from "./method-policy.js";
import { admitCall, gatedKey } from "./request-gate.js";
import type { StreamLimiter } from "./stream-limiter.js";

export { LIMITED_STREAMS } from "./method-policy.js";

/**
 * The auth interceptor. Who may call what is decided before the body is read, by the request gate
 * (request-gate.ts), which stores the caller under callerKey; a call that did not pass that gate
 * (a router built without it) is authenticated here instead, so nothing is let through by default.
 * Streams are also bounded per token (LIMITED_STREAMS), public ones per peer address, and end with
 * UNAUTHENTICATED when their token is revoked, or when auth is turned on under an anonymous one.
 */
export function createAuthInterceptor(gate: AuthGate, events: AuthEvents, limiter: StreamLimiter, publicLimiter: StreamLimiter = limiter): Interceptor {
  const policyOf = methodPolicies();
  return (next) =>
    async function authInterceptor(req) {
      const policy = policyOf(req);
      if (policy.public) return publicCall(req, next, publicLimiter);
      const caller = req.contextValues.get(gatedKey)
        ? req.contextValues.get(callerKey)
        : await admitCall(gate, policy, req.header.get("authorization"), req.contextValues);
      if (!req.stream) return next(req);

      const release = policy.limited ? limiter.acquire(caller.tokenId, req.method.name) : () => {};
      // Also free the slot when the call is cancelled before its stream is first read (release is idempotent).
      req.signal.addEventListener("abort", release, { once: true });
      let res: StreamResponse;
      try {
        res = (await next(req)) as StreamResponse;
      } catch (err) {
        release();
        throw err;
      }
      return { ...res, message: endOnRevoke(res.message, caller, events, release) };
    };
}

/**
 * Public RPCs (health) run without a caller; their streams are bounded per peer address, so that
 * one anonymous client can neither pile them up nor take the share of everyone else.
 */
async function publicCall(req: Parameters<Parameters<Interceptor>[0]>[0], next: Parameters<Interceptor>[0], limiter: StreamLimiter) {
  if (!req.stream) return next(req);
  const release = limiter.acquire(`(public) ${peerOf(req.contextValues)}`, req.method.name);
  req.signal.addEventListener("abort", release, { once: true });
  try {
    const res = (await next(req)) as StreamResponse;
    return { ...res, message: releaseAtEnd(res.message, release) };
  } catch (err) {
    release();
    throw err;
  }
}

async function* releaseAtEnd<T>(messages: AsyncIterable<T>, release: () => void): AsyncGenerator<T> {
  try {
    yield* messages;
  } finally {
    release();
  }
}

/**
 * Passes a response stream through until it ends or the caller's token is revoked.
 * Each wait is a fresh promise settled by the next message or by the revocation, so
 * a stream that lives for days holds no growing chain of reactions.
 */
async function* endOnRevoke<T>(
  messages: AsyncIterable<T>,
  caller: Caller,
  events: AuthEvents,
  release: () => void,
): AsyncGenerator<T> {
  let revoked = false;
  let interrupt: (() => void) | undefined;
  const unsubscribe = events.onRevoke((id) => {
    if (id !== caller.tokenId) return;
    revoked = true;
    interrupt?.();
  });
  const it = messages[Symbol.asyncIterator]();
  let done = false;
  try {
    for (;;) {
      const r = revoked
        ? undefined
        : await new Promise<IteratorResult<T> | undefined>((resolve, reject) => {
            interrupt = () => resolve(undefined);
            it.next().then(resolve, reject);
          });
      interrupt = undefined;
      if (r === undefined) {
        throw new ConnectError(
          caller.tokenId === OPEN_CALLER.tokenId
            ? "auth was turned on (a token was created): this stream was opened without a token; reconnect with one"
            : `token ${caller.tokenId} (${caller.name}) was revoked`,
          Code.Unauthenticated,
        );
      }
      if (r.done) {
        done = true;
        return;
      }
      yield r.value;
    }
  } finally {
    unsubscribe();
    release();
    // Let the handler's generator run its cleanup; it may still be waiting, so do not await it.
    if (!done) void Promise.resolve(it.return?.()).catch(() => {});
  }
}
