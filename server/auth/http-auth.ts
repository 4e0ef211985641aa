import type { StudioModule } from "../context.js";
import type { HttpRequest, HttpResponse, HttpRoute } from "../http/http-routes.js";
import { sendText } from "../http/http-routes.js";
import { HTTP_READER_ROLES } from "./access-policy.js";
import { AuthError, type AuthGate } from "./auth-gate.js";
import type { Caller, Role } from "./caller.js";

/** Authenticates a plain HTTP request the way the interceptor does an RPC; throws AuthError. */
export async function authenticateHttp(gate: AuthGate, req: HttpRequest, roles: readonly Role[] = HTTP_READER_ROLES): Promise<Caller> {
  const header = req.headers.authorization;
  const caller = await gate.authenticate(Array.isArray(header) ? header[0] : header);
  gate.authorize(caller, roles, `${req.method} ${new URL(req.url ?? "/", "http://x").pathname}`);
  return caller;
}

/**
 * Wraps plain HTTP routes so that each one answers 401 (no or bad token) or 403
 * (wrong role) before its handler runs. modules.ts applies it to every module's
 * routes except the ones that must stay open (health, metrics, the web page shell).
 */
export function protectHttpRoutes(gate: AuthGate, routes: HttpRoute[], roles: readonly Role[] = HTTP_READER_ROLES): HttpRoute[] {
  return routes.map((route) => ({
    ...route,
    async handle(req: HttpRequest, res: HttpResponse, params: Record<string, string>, url: URL) {
      try {
        await authenticateHttp(gate, req, roles);
      } catch (err) {
        if (!(err instanceof AuthError)) throw err;
        const status = err.code === "unauthenticated" ? 401 : 403;
        if (route.refuse) return route.refuse(res, status, err.message);
        if (status === 401) (res as { setHeader(n: string, v: string): void }).setHeader("www-authenticate", 'Bearer realm="studio"');
        sendText(res, status, `${err.message}\n`);
        return;
      }
      return route.handle(req, res, params, url);
    },
  }));
}

/** Modules whose plain routes stay open: health and metrics (ops) and the web page's shell (web). */
export const OPEN_HTTP_MODULES: ReadonlySet<string> = new Set(["ops", "web"]);

/**
 * Puts every other module's plain routes (output downloads) behind a token, in
 * place, so that a new route is protected unless its module is listed as open.
 */
export function protectModuleRoutes(gate: AuthGate, modules: StudioModule[], open = OPEN_HTTP_MODULES): StudioModule[] {
  for (const m of modules) {
    if (m.httpRoutes && !open.has(m.name)) m.httpRoutes = protectHttpRoutes(gate, m.httpRoutes);
  }
  return modules;
}
