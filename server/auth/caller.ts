import { createContextKey, type HandlerContext } from "@connectrpc/connect";

/** The roles a bearer token can have. */
export type Role = "admin" | "client" | "worker";

/** Who is calling: set by the auth interceptor on every RPC's context values. */
export interface Caller {
  /** The token's id, or "open" when the studio runs open on loopback without tokens. */
  tokenId: string;
  name: string;
  role: Role;
}

/** The open studio's caller (loopback, no tokens configured): may do everything. */
export const OPEN_CALLER: Caller = { tokenId: "open", name: "open", role: "admin" };

/** Context key under which the auth interceptor stores the caller. */
export const callerKey = createContextKey<Caller>(OPEN_CALLER, { description: "studio caller" });

/** The caller of an RPC (the open caller until auth is configured). */
export function callerOf(ctx: HandlerContext): Caller {
  return ctx.values.get(callerKey);
}
