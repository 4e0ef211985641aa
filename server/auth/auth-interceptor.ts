import { Code, ConnectError, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import type { AuthEvents } from "./auth-events.js";
import { AuthError, type AuthGate } from "./auth-gate.js";
import { callerKey, type Caller, type Role } from "./caller.js";
import { PUBLIC_RPCS, rolesFor } from "./access-policy.js";
import type { StreamLimiter } from "./stream-limiter.js";

/** RPCs whose open streams count against a token's stream limit. */
export const LIMITED_STREAMS: ReadonlySet<string> = new Set(["studio.v1.JobService/WatchJobs", "studio.v1.WorkerService/WatchWorkers"]);

/** The access policy of one method: its "service/method" name, whether it is public, who may call it, whether its streams count. */
interface MethodPolicy {
  rpc: string;
  public: boolean;
  roles: readonly Role[];
  limited: boolean;
}

/** AuthError → ConnectError, at the RPC edge. */
export function authErrorToConnect(err: AuthError): ConnectError {
  return new ConnectError(err.message, err.code === "unauthenticated" ? Code.Unauthenticated : Code.PermissionDenied);
}

/**
 * The auth interceptor: authenticates the bearer token of every RPC (Connect, gRPC
 * and gRPC-Web alike), checks the caller's role against RPC_ROLES and stores the
 * caller under callerKey. Streams are also bounded per token (LIMITED_STREAMS) and
 * end with UNAUTHENTICATED when their token is revoked while they are open.
 */
export function createAuthInterceptor(gate: AuthGate, events: AuthEvents, limiter: StreamLimiter): Interceptor {
  // What the policy says about a method depends on the method only: worked out once per method.
  const policies = new WeakMap<object, MethodPolicy>();
  const policyOf = (req: { service: { typeName: string }; method: { name: string } }): MethodPolicy => {
    let policy = policies.get(req.method);
    if (!policy) {
      const rpc = `${req.service.typeName}/${req.method.name}`;
      policy = { rpc, public: PUBLIC_RPCS.has(rpc), roles: rolesFor(req.service.typeName, req.method.name), limited: LIMITED_STREAMS.has(rpc) };
      policies.set(req.method, policy);
    }
    return policy;
  };
  return (next) =>
    async function authInterceptor(req) {
      const policy = policyOf(req);
      if (policy.public) return publicCall(req, next, limiter);
      let caller: Caller;
      try {
        caller = await gate.authenticate(req.header.get("authorization"));
        // Set before the role check so that the request log names who was refused.
        req.contextValues.set(callerKey, caller);
        gate.authorize(caller, policy.roles, policy.rpc);
      } catch (err) {
        throw err instanceof AuthError ? authErrorToConnect(err) : err;
      }
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

/** Public RPCs (health) run without a caller; their streams share one bound, so anonymous callers cannot pile them up. */
async function publicCall(req: Parameters<Parameters<Interceptor>[0]>[0], next: Parameters<Interceptor>[0], limiter: StreamLimiter) {
  if (!req.stream) return next(req);
  const release = limiter.acquire(PUBLIC_STREAMS_KEY, req.method.name);
  req.signal.addEventListener("abort", release, { once: true });
  try {
    const res = (await next(req)) as StreamResponse;
    return { ...res, message: releaseAtEnd(res.message, release) };
  } catch (err) {
    release();
    throw err;
  }
}

/** The limiter key public streams count under. */
const PUBLIC_STREAMS_KEY = "(public)";

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
        throw new ConnectError(`token ${caller.tokenId} (${caller.name}) was revoked`, Code.Unauthenticated);
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
