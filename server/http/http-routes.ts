import type * as http from "node:http";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { isDatabaseUnavailable } from "../db/pg/pg-errors.js";

type NodeHandler = ReturnType<typeof connectNodeAdapter>;
export type HttpRequest = Parameters<NodeHandler>[0];
export type HttpResponse = Parameters<NodeHandler>[1];

/** A plain HTTP route beside the RPCs: health, metrics, output downloads, the web page. */
export interface HttpRoute {
  method: "GET" | "HEAD" | "POST";
  /** Matched against the path (no query); named groups become params. */
  path: RegExp;
  handle(req: HttpRequest, res: HttpResponse, params: Record<string, string>, url: URL): void | Promise<void>;
  /** How the route answers a caller auth refused (401 or 403); plain text when unset. */
  refuse?(res: HttpResponse, status: 401 | 403, message: string): void;
}

/** Serves the first route whose method and path match, else 404 (or 405 when only the method is wrong). */
export function createHttpFallback(routes: HttpRoute[]) {
  return function httpFallback(req: HttpRequest, res: HttpResponse): void {
    const url = new URL(req.url ?? "/", "http://studio.invalid");
    let pathMatched = false;
    for (const route of routes) {
      const m = route.path.exec(url.pathname);
      if (!m) continue;
      pathMatched = true;
      const method = req.method === "HEAD" && route.method === "GET" ? "GET" : req.method;
      if (method !== route.method) continue;
      Promise.resolve(route.handle(req, res, { ...m.groups }, url)).catch((err: unknown) => {
        if (res.headersSent) res.end();
        else if (isDatabaseUnavailable(err)) sendText(res, 503, "the database is unavailable; try again\n");
        else sendText(res, 500, `internal error: ${err instanceof Error ? err.message : String(err)}\n`);
      });
      return;
    }
    sendText(res, pathMatched ? 405 : 404, pathMatched ? "method not allowed\n" : "not found\n");
  };
}

/** Ends a response with a text body. */
export function sendText(res: HttpResponse, status: number, body: string, contentType = "text/plain; charset=utf-8") {
  (res as http.ServerResponse).writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** Ends a response with a JSON body. */
export function sendJson(res: HttpResponse, status: number, value: unknown) {
  sendText(res, status, `${JSON.stringify(value)}\n`, "application/json");
}
