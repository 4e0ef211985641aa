import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { RequestGate } from "../context.js";
import { connectErrorOf } from "../ops/rpc-errors.js";
import type { AuthGate } from "./auth-gate.js";
import { callerKey, type Caller } from "./caller.js";
import type { MethodPolicy } from "./method-policy.js";

/** Set by the request gate once it has authenticated and authorized a call: the interceptor then trusts callerKey. */
export const gatedKey = createContextKey<boolean>(false, { description: "auth checked before the body" });

/**
 * Authenticates and authorizes one call from its headers (the Authorization header, the method's
 * roles) and stores the caller under callerKey, or throws UNAUTHENTICATED / PERMISSION_DENIED
 * (mapped here too, for a router built without the ops module's error interceptor).
 * The caller is stored before the role check so that the request log names who was refused.
 */
export async function admitCall(
  gate: AuthGate,
  policy: MethodPolicy,
  authorization: string | null,
  values: HandlerContext["values"],
): Promise<Caller> {
  try {
    const caller = await gate.authenticate(authorization);
    values.set(callerKey, caller);
    gate.authorize(caller, policy.roles, policy.rpc);
    return caller;
  } catch (err) {
    throw connectErrorOf(err);
  }
}

/**
 * The auth request gate: every non-public RPC is authenticated and authorized from its headers
 * before its body is read, so an unauthenticated caller cannot make the studio read (up to 8 MiB
 * per call), decompress or parse anything. Per call: one policy lookup and the token lookup the
 * call needed anyway.
 */
export function authRequestGate(gate: AuthGate, policyOf: (call: HandlerContext) => MethodPolicy): (next: RequestGate) => RequestGate {
  return (next) =>
    async function authGate(ctx) {
      const policy = policyOf(ctx);
      if (!policy.public) {
        await admitCall(gate, policy, ctx.requestHeader.get("authorization"), ctx.values);
        ctx.values.set(gatedKey, true);
      }
      return next(ctx);
    };
}
