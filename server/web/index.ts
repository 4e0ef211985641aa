import type * as http from "node:http";
import type { StudioContext, StudioModule } from "../context.js";
import { sendText, type HttpRequest, type HttpResponse, type HttpRoute } from "../http/http-routes.js";
import { buildWebBundle, type WebAsset, type WebBundle } from "./build-bundle.js";

export { buildWebBundle, WebBuildError, type WebBundle, type WebAsset } from "./build-bundle.js";

/**
 * The page may talk only to the studio that served it: no CDN, no inline script,
 * images from outputs arrive as blob: URLs (fetched with the bearer token).
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join("; ");

function send(req: HttpRequest, response: HttpResponse, file: WebAsset, cacheControl: string) {
  const res = response as http.ServerResponse;
  const headers: Record<string, string | number> = {
    "content-type": file.contentType,
    "cache-control": cacheControl,
    etag: file.etag,
    vary: "accept-encoding",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  };
  if (file.contentType.startsWith("text/html")) headers["content-security-policy"] = CONTENT_SECURITY_POLICY;
  const ifNoneMatch = req.headers["if-none-match"];
  if (typeof ifNoneMatch === "string" && ifNoneMatch.split(/\s*,\s*/).includes(file.etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const acceptEncoding = req.headers["accept-encoding"];
  const gzip = file.gzip && typeof acceptEncoding === "string" && /\bgzip\b/.test(acceptEncoding);
  const body = gzip ? file.gzip! : file.body;
  if (gzip) headers["content-encoding"] = "gzip";
  headers["content-length"] = body.byteLength;
  res.writeHead(200, headers);
  res.end(req.method === "HEAD" ? undefined : body);
}

/**
 * Serves the admin page at `/` and its hashed files at `/assets/{name}`.
 * The bundle is built in memory on the first request (well under a second with Bun)
 * rather than at start, so the many studios that tests start pay nothing for it.
 * index.html is revalidated on every load; hashed assets are cached for a year.
 */
export function createWebModule(ctx: StudioContext, build: () => Promise<WebBundle> = buildWebBundle): StudioModule {
  let bundle: Promise<WebBundle> | undefined;
  const load = () => {
    bundle ??= build().catch((err: unknown) => {
      bundle = undefined;
      ctx.logger.error({ err }, "admin page build failed");
      throw err;
    });
    return bundle;
  };

  const routes: HttpRoute[] = [
    {
      method: "GET",
      path: /^\/(?:index\.html)?$/,
      async handle(req, res) {
        const b = await loadOr500(load, res);
        if (b) send(req, res, b.index, "no-cache");
      },
    },
    {
      method: "GET",
      path: /^\/assets\/(?<name>[A-Za-z0-9._-]+)$/,
      async handle(req, res, params) {
        const b = await loadOr500(load, res);
        if (!b) return;
        const file = b.assets.get(params.name ?? "");
        if (!file) return sendText(res, 404, "not found\n");
        send(req, res, file, "public, max-age=31536000, immutable");
      },
    },
  ];
  return { name: "web", httpRoutes: routes };
}

async function loadOr500(load: () => Promise<WebBundle>, res: HttpResponse): Promise<WebBundle | undefined> {
  try {
    return await load();
  } catch (err) {
    sendText(res, 500, `${err instanceof Error ? err.message : String(err)}\n`);
    return undefined;
  }
}
