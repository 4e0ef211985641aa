import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest, Http2Session } from "node:http2";
import { createContextKey, createContextValues, type ContextValues } from "@connectrpc/connect";

/** The HTTP/2 connection a call came on (undefined over HTTP/1.1), for a handler that must see its transport. */
export const http2SessionKey = createContextKey<Http2Session | undefined>(undefined, { description: "the call's HTTP/2 connection" });

/** The context values every call starts with (connectNodeAdapter's contextValues). */
export function requestContextValues(req: IncomingMessage | Http2ServerRequest): ContextValues {
  const values = createContextValues();
  const session = "stream" in req ? req.stream.session : undefined;
  if (session) values.set(http2SessionKey, session);
  return values;
}
