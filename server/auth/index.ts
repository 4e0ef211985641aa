import type { StudioContext, StudioModule } from "../context.js";
import type { HttpRoute } from "../http/http-routes.js";
import type { HttpRequest } from "../http/http-routes.js";
import { AuthEvents } from "./auth-events.js";
import { isLoopbackHost } from "../../contract/http-url.js";
import { AuthGate } from "./auth-gate.js";
import { createAuthInterceptor } from "./auth-interceptor.js";
import { bootstrapAuth, type AuthMode } from "./bootstrap.js";
import { OPEN_CALLER, type Caller, type Role } from "./caller.js";
import { openModeHostCheck } from "./host-check.js";
import { methodPolicies } from "./method-policy.js";
import { authRequestGate } from "./request-gate.js";
import { authenticateHttp, protectHttpRoutes, protectModuleRoutes } from "./http-auth.js";
import { StreamLimiter } from "./stream-limiter.js";
import { tokenRoutes } from "./token-service.js";
import type { TokenStore } from "./token-store.js";

export { AuthEvents } from "./auth-events.js";
export { AuthError, AuthGate } from "./auth-gate.js";
export { RPC_ROLES, rolesFor, HTTP_READER_ROLES } from "./access-policy.js";
export { callerKey, callerOf, OPEN_CALLER, type Caller, type Role } from "./caller.js";
export { TOKEN_PREFIX, hashSecret, type TokenStore } from "./token-store.js";
export { StreamLimiter } from "./stream-limiter.js";
export { OPEN_HTTP_MODULES } from "./http-auth.js";

/** The auth module plus what other parts of the studio use from it. */
export interface AuthModule extends StudioModule {
  name: "auth";
  store: TokenStore;
  gate: AuthGate;
  /** Revocations: dispatch subscribes to end the revoked worker's session. */
  events: AuthEvents;
  /** Open or enforced, as decided at start (it becomes enforced once a token is created). */
  readonly mode: AuthMode;
  /** For plain HTTP routes: the caller, or AuthError (401/403). Default roles: admin and client. */
  authenticateHttp(req: HttpRequest, roles?: readonly Role[]): Promise<Caller>;
  /** Wraps routes so that they need a token (admin or client by default) when auth is on. */
  protect(routes: HttpRoute[], roles?: readonly Role[]): HttpRoute[];
  /** Protects the plain routes of every module not in OPEN_HTTP_MODULES, in place. */
  protectModules(modules: StudioModule[]): StudioModule[];
}

export interface AuthModuleOptions {
  /** Where a bootstrap admin secret is printed; stderr by default. */
  printSecret?: (text: string) => void;
}

/**
 * Bearer-token auth: TokenService, the interceptor that runs before every RPC,
 * and the start-up bootstrap (open on loopback with no tokens, never open elsewhere).
 * It must be the first module so that no other interceptor or handler runs for a refused caller.
 */
export function createAuthModule(ctx: StudioContext, options: AuthModuleOptions = {}): AuthModule {
  const store = ctx.storage.tokens;
  const events = new AuthEvents();
  const logger = ctx.logger.child({ module: "auth" });
  // When auth turns on, whatever anonymous callers opened while the studio was open (WatchJobs
  // streams, worker sessions, long-polls) ends as if their token had been revoked.
  const gate = new AuthGate(store, {
    loopback: isLoopbackHost(ctx.config.host),
    onClosed: () => {
      logger.info("auth turned on: ending the streams opened without a token");
      events.revoked(OPEN_CALLER.tokenId);
    },
  });
  // The first token turns auth on for good, wherever it was made.
  events.onCreate(() => gate.close());
  // Tokens created or revoked on another replica sharing the database: the same as here.
  ctx.storage.cluster?.onTokenChange((c) => (c.kind === "revoked" ? events.revoked(c.tokenId) : events.created(c.tokenId)));
  const limiter = new StreamLimiter(ctx.config.maxWatchStreamsPerToken);
  return {
    name: "auth",
    store,
    gate,
    events,
    get mode(): AuthMode {
      return gate.open ? "open" : "enforced";
    },
    routes: tokenRoutes(store, events, logger, () => gate.isOpen()),
    // Auth starts first of all modules and before the port opens, so that no request sees a half-decided mode.
    async start() {
      await bootstrapAuth({ store, config: ctx.config, logger, printSecret: options.printSecret });
      await gate.init();
    },
    requestGate: authRequestGate(gate, methodPolicies()),
    httpGate: openModeHostCheck(gate),
    interceptors: [createAuthInterceptor(gate, events, limiter)],
    authenticateHttp: (req, roles) => authenticateHttp(gate, req, roles),
    protect: (routes, roles) => protectHttpRoutes(gate, routes, roles),
    protectModules: (modules) => protectModuleRoutes(gate, modules),
  };
}
