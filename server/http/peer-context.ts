import { createContextKey, type ContextValues } from "@connectrpc/connect";
import type { HttpRequest } from "./http-routes.js";
import { peerKey } from "./peer-address.js";

/** The Node request behind an RPC (app.ts sets it), so that what needs the peer's address can find it. */
export const nodeRequestKey = createContextKey<HttpRequest | undefined>(undefined, { description: "node request" });

/** The peer an RPC came from, as the listener counts peers (peerKey); "(unknown)" outside a server. */
export function peerOf(values: ContextValues): string {
  return peerKey(values.get(nodeRequestKey)?.socket?.remoteAddress);
}
